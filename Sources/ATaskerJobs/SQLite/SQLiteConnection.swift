internal import CSQLite

/// An error of the SQLite driver: the call, SQLite's message and its result code.
public struct JobStoreError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, with the store's URL or the call.
    public var message: String
    /// SQLite's (extended) result code, or 0 for an error of the driver itself.
    public var code: Int32

    /// An error with this message.
    public init(_ message: String, code: Int32 = 0) {
        self.message = message
        self.code = code
    }

    /// The message.
    public var description: String { self.message }
}

/// A value bound to a parameter or read from a column.
enum SQLValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    var int: Int64? {
        switch self {
        case .integer(let i): return i
        case .real(let d): return Int64(exactly: d)
        default: return nil
        }
    }
    var double: Double? {
        switch self {
        case .integer(let i): return Double(i)
        case .real(let d): return d
        default: return nil
        }
    }
    var string: String? {
        if case .text(let s) = self { return s }
        return nil
    }
    var bytes: [UInt8]? {
        switch self {
        case .blob(let b): return b
        case .text(let s): return Array(s.utf8)
        default: return nil
        }
    }
}

/// One SQLite connection with its prepared statements. Not thread-safe: ``SQLiteJobStore`` keeps it behind a mutex.
final class SQLiteConnection {
    private let db: OpaquePointer
    private var statements: [String: OpaquePointer] = [:]
    let path: String

    /// Opens (creating) the file at `path` in WAL mode with a busy timeout, so several processes may share it.
    init(path: String, busyTimeoutMs: Int32) throws(JobStoreError) {
        // (The pragmas run after every stored property is set, so a failing one closes the handle in deinit.)
        var handle: OpaquePointer? = nil
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &handle, flags, nil)
        guard rc == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "out of memory"
            if let handle { sqlite3_close_v2(handle) }
            throw JobStoreError("cannot open the SQLite file '\(path)': \(message)", code: rc)
        }
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, busyTimeoutMs)
        self.db = handle
        self.path = path
        // WAL: readers never block the writer; NORMAL: a commit does not fsync (a crash of the process loses
        // nothing; a power loss may lose the last commits, never the file).
        try self.execute("PRAGMA journal_mode=WAL")
        try self.execute("PRAGMA synchronous=NORMAL")
        try self.execute("PRAGMA foreign_keys=ON")
    }

    deinit {
        for statement in self.statements.values { sqlite3_finalize(statement) }
        sqlite3_close_v2(self.db)
    }

    private func error(_ what: String, _ rc: Int32) -> JobStoreError {
        let message = String(cString: sqlite3_errmsg(self.db))
        return JobStoreError("SQLite '\(self.path)': \(what): \(message) (code \(rc))", code: rc)
    }

    /// Runs statements that take no parameters and return nothing useful (schema, pragmas, transactions).
    func execute(_ sql: String) throws(JobStoreError) {
        var message: UnsafeMutablePointer<CChar>? = nil
        let rc = sqlite3_exec(self.db, sql, nil, nil, &message)
        if rc != SQLITE_OK {
            let text = message.map { String(cString: $0) } ?? "error"
            sqlite3_free(message)
            throw JobStoreError("SQLite '\(self.path)': \(sql.prefix(60)): \(text) (code \(rc))", code: rc)
        }
    }

    /// Rows changed by the last statement.
    var changes: Int { Int(sqlite3_changes(self.db)) }

    /// Runs `sql` (prepared once and cached) with `parameters`, and returns its rows.
    @discardableResult
    func query(_ sql: String, _ parameters: [SQLValue] = []) throws(JobStoreError) -> [[SQLValue]] {
        let statement = try self.prepare(sql)
        defer {
            sqlite3_reset(statement)
            sqlite3_clear_bindings(statement)
        }
        for (i, value) in parameters.enumerated() {
            let index = Int32(i + 1)
            let rc: Int32
            switch value {
            case .null: rc = sqlite3_bind_null(statement, index)
            case .integer(let v): rc = sqlite3_bind_int64(statement, index, v)
            case .real(let v): rc = sqlite3_bind_double(statement, index, v)
            case .text(let v): rc = sqlite3_bind_text(statement, index, v, -1, csqlite_transient())
            case .blob(let v):
                rc = v.withUnsafeBytes { raw in
                    sqlite3_bind_blob64(
                        statement, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), UInt64(raw.count),
                        csqlite_transient())
                }
            }
            guard rc == SQLITE_OK else { throw self.error("binding parameter \(index)", rc) }
        }
        var rows: [[SQLValue]] = []
        while true {
            let rc = sqlite3_step(statement)
            if rc == SQLITE_DONE { break }
            guard rc == SQLITE_ROW else { throw self.error(String(sql.prefix(60)), rc) }
            let count = sqlite3_column_count(statement)
            var row: [SQLValue] = []
            row.reserveCapacity(Int(count))
            for column in 0..<count {
                switch sqlite3_column_type(statement, column) {
                case SQLITE_INTEGER: row.append(.integer(sqlite3_column_int64(statement, column)))
                case SQLITE_FLOAT: row.append(.real(sqlite3_column_double(statement, column)))
                case SQLITE_TEXT:
                    row.append(.text(sqlite3_column_text(statement, column).map { String(cString: $0) } ?? ""))
                case SQLITE_BLOB:
                    let n = Int(sqlite3_column_bytes(statement, column))
                    if n > 0, let p = sqlite3_column_blob(statement, column) {
                        row.append(.blob(Array(UnsafeRawBufferPointer(start: p, count: n))))
                    } else {
                        row.append(.blob([]))
                    }
                default: row.append(.null)
                }
            }
            rows.append(row)
        }
        return rows
    }

    private func prepare(_ sql: String) throws(JobStoreError) -> OpaquePointer {
        if let cached = self.statements[sql] { return cached }
        var statement: OpaquePointer? = nil
        let rc = sqlite3_prepare_v3(self.db, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &statement, nil)
        guard rc == SQLITE_OK, let statement else { throw self.error("preparing \(sql.prefix(60))", rc) }
        self.statements[sql] = statement
        return statement
    }

    /// Runs `body` in one `BEGIN IMMEDIATE` transaction (the write lock is taken at once, so two writers never
    /// deadlock on an upgrade), committing when it returns and rolling back when it throws.
    func transaction<R>(_ body: (SQLiteConnection) throws(JobStoreError) -> R) throws(JobStoreError) -> R {
        try self.execute("BEGIN IMMEDIATE")
        do {
            let result = try body(self)
            try self.execute("COMMIT")
            return result
        } catch {
            try? self.execute("ROLLBACK")
            throw error
        }
    }
}
