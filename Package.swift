// swift-tools-version:6.1
import PackageDescription

// Settings shared by every Swift target: Swift 6 language mode with strict concurrency,
// and the module hygiene that keeps C types and dependencies out of public signatures.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "atasker-lua",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "ATasker", targets: ["ATasker"]),
        .library(name: "ATaskerLua", targets: ["ATaskerLua"]),
        .library(name: "ATaskerJobs", targets: ["ATaskerJobs"]),
        .executable(name: "atasker-lua", targets: ["atasker-lua"]),
    ],
    // Postgres (on by default): the PostgreSQL driver of durable jobs, built on postgres-nio and SwiftNIO. Without it
    // (`--disable-default-traits`, as the ThreadSanitizer run of CI builds) a postgres:// store URL is refused.
    traits: [
        .trait(name: "Postgres", description: "The PostgreSQL store of durable jobs (postgres-nio)"),
        .default(enabledTraits: ["Postgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        // The PostgreSQL store of durable jobs (trait Postgres).
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        .systemLibrary(
            name: "CLua",
            pkgConfig: "lua5.4",
            providers: [.apt(["liblua5.4-dev"])]
        ),
        // The system's SQLite 3 (durable jobs' embedded store).
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        // No unsafe build flags in any target: SwiftPM refuses a dependency that has them. The C targets are built -O2 by
        // the release configuration (`swift build -c release`), which is what scripts/run and scripts/bench use.
        .target(
            name: "CLuaShim",
            dependencies: ["CLua"]
        ),
        // The Linux calls of the process pool that Swift's Glibc module cannot import.
        .target(name: "CProcessSpawn"),
        .target(
            name: "ATasker",
            dependencies: [
                "CProcessSpawn",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "ATaskerLua",
            dependencies: [
                "ATasker",
                "CLuaShim",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Durable jobs: the store protocol, its SQLite driver, the job runner and the Lua module `atasker.jobs`.
        // The core (ATasker, ATaskerLua) builds without it.
        .target(
            name: "ATaskerJobs",
            dependencies: [
                "ATasker",
                "ATaskerLua",
                "CSQLite",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "NIOCore", package: "swift-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "NIOPosix", package: "swift-nio", condition: .when(traits: ["Postgres"])),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "atasker-lua",
            dependencies: [
                "ATasker",
                "ATaskerLua",
                "ATaskerJobs",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "EmbedSwift",
            dependencies: [
                "ATasker",
                "ATaskerLua",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            path: "Examples/EmbedSwift",
            swiftSettings: swiftSettings
        ),
        // The child (and test parent) program that the process pool tests spawn.
        .executableTarget(
            name: "ProcessChildFixture",
            dependencies: ["ATasker", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ProcessChildFixture",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ATaskerTests",
            dependencies: [
                "ATasker",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ATaskerLuaTests",
            dependencies: [
                "ATasker", "ATaskerLua", "CLuaShim",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // The public API as an embedding app sees it: no @testable import.
        .testTarget(
            name: "EmbeddingTests",
            dependencies: [
                "ATasker", "ATaskerLua",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "ATaskerJobsTests",
            dependencies: [
                "ATaskerJobs", "ATaskerLua",
                .product(name: "Logging", package: "swift-log"),
                // A put inside the app's own transaction, on a connection that the test opens.
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CLITests",
            dependencies: ["CSQLite"],  // the durable-jobs tests damage a row as a bad disk would
            swiftSettings: swiftSettings
        ),
    ]
)
