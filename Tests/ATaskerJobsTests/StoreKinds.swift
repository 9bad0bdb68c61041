import ATaskerJobs
import Foundation
import Synchronization
import Testing

/// The drivers that the store tests run on: SQLite always; PostgreSQL when ATASKER_TEST_POSTGRES has a server's
/// URL (scripts/test sets it to a throwaway cluster that scripts/pg-cluster starts).
enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    case postgres

    /// SQLite, and PostgreSQL when a test server is given and the build has the driver (a note says so once when
    /// not).
    static let available: [StoreKind] = {
        #if Postgres
            if postgresTestURL != nil { return [.sqlite, .postgres] }
            print(
                "note: ATASKER_TEST_POSTGRES is not set: the store tests run on SQLite only (scripts/test starts a "
                    + "PostgreSQL cluster and sets it)")
        #else
            print("note: built without the Postgres trait: the store tests run on SQLite only")
        #endif
        return [.sqlite]
    }()

    var testDescription: String { self.rawValue }

    /// Opens (does not migrate) the store at `url`.
    func open(_ url: String) throws -> any JobStore {
        switch self {
        case .sqlite: return try SQLiteJobStore(url: url)
        case .postgres:
            #if Postgres
                return try PostgresJobStore(url: url)
            #else
                throw JobStoreError("this build has no PostgreSQL driver")
            #endif
        }
    }

    var schemaVersion: Int {
        switch self {
        case .sqlite: return SQLiteJobStore.schemaVersion
        case .postgres:
            #if Postgres
                return PostgresJobStore.schemaVersion
            #else
                return 0
            #endif
        }
    }
}

/// The URL of the test server (a database that tests make their own databases beside), or `nil`.
let postgresTestURL: String? = {
    guard let url = ProcessInfo.processInfo.environment["ATASKER_TEST_POSTGRES"], !url.isEmpty else { return nil }
    return url
}()

/// A store of its own for one test: a new SQLite file, or a new database on the test server (dropped at the end).
func withFreshStore<R>(_ kind: StoreKind, _ body: (String) throws -> R) throws -> R {
    switch kind {
    case .sqlite:
        return try withStoreFile { path in try body("sqlite://" + path) }
    case .postgres:
        let base = try #require(postgresTestURL)
        let name = "atasker_t_" + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        try psql(base, "CREATE DATABASE \(name)")
        defer { try? psql(base, "DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
        return try body(replacingDatabase(of: base, with: name))
    }
}

/// `url` with its database replaced by `name` (and no options).
func replacingDatabase(of url: String, with name: String) -> String {
    let scheme = url.range(of: "://")!
    let rest = url[scheme.upperBound...]
    let host = rest.firstIndex(of: "/").map { rest[..<$0] } ?? rest[...]
    return String(url[..<scheme.upperBound]) + host + "/" + name
}

/// The lines that psql prints for `sql` (unaligned, tuples only).
func psqlLines(_ url: String, _ sql: String) throws -> [String] {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
    process.arguments = ["-qAt", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
    let out = Pipe()
    process.standardOutput = out
    try process.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    process.waitUntilExit()
    guard process.terminationStatus == 0 else { throw JobStoreError("psql \(sql) failed") }
    return text.split(separator: "\n").map(String.init)
}

/// Runs `sql` with psql on the database of `url`.
func psql(_ url: String, _ sql: String) throws {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/usr/bin/psql")
    process.arguments = ["-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql]
    let err = Pipe()
    process.standardError = err
    process.standardOutput = FileHandle.nullDevice
    try process.run()
    let message = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    guard process.terminationStatus == 0 else {
        throw JobStoreError("psql \(sql): \(String(decoding: message, as: UTF8.self))")
    }
}
