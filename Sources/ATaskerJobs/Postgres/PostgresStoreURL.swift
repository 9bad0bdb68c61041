#if Postgres
    /// The parts of a PostgreSQL store URL: `postgres://user:password@host:port/database?option=value&...`
    /// (`postgresql://` too). User and password may be percent-encoded.
    ///
    /// Options: `sslmode=disable` (the only mode this build speaks: use it on loopback or a private network),
    /// `connections=N` (the store's pool of connections in this process, default 4), `outage=S` (seconds that a call
    /// waits, reconnecting with backoff, for a server that is down or restarting before it fails; default 30),
    /// `connect_timeout=S` (one connection attempt; default 10), `query_timeout=S` (the longest wait for one statement's
    /// answer before the connection is taken as broken; default 15).
    struct PostgresStoreURL: Sendable, Hashable {
        var user: String
        var password: String?
        var host: String
        var port: Int
        var database: String
        var connections = 4
        var outage = 30.0
        var connectTimeout = 10.0
        var queryTimeout = 15.0

        /// Whether `url` names a PostgreSQL store.
        static func isPostgres(_ url: String) -> Bool {
            url.hasPrefix("postgres://") || url.hasPrefix("postgresql://")
        }

        /// Parses `url`; the error says which part is wrong and how a URL is written.
        init(_ url: String) throws(JobStoreError) {
            let form = "write postgres://user:password@host:port/database (port 5432 and database = user when left out)"
            guard let scheme = ["postgresql://", "postgres://"].first(where: { url.hasPrefix($0) }) else {
                throw JobStoreError("'\(url)' is not a PostgreSQL store URL: \(form)")
            }
            var rest = Substring(url.dropFirst(scheme.count))
            var query = Substring("")
            if let q = rest.firstIndex(of: "?") {
                query = rest[rest.index(after: q)...]
                rest = rest[..<q]
            }
            var path = Substring("")
            if let slash = rest.firstIndex(of: "/") {
                path = rest[rest.index(after: slash)...]
                rest = rest[..<slash]
            }
            var userInfo: Substring? = nil
            if let at = rest.lastIndex(of: "@") {
                userInfo = rest[..<at]
                rest = rest[rest.index(after: at)...]
            }
            var user = "postgres"
            var password: String? = nil
            if let userInfo {
                let parts = userInfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                user = try Self.decode(parts[0], in: url)
                if parts.count == 2 { password = try Self.decode(parts[1], in: url) }
            }
            var host = String(rest)
            var port = 5432
            if let colon = rest.lastIndex(of: ":"), !rest.hasSuffix("]") {
                host = String(rest[..<colon])
                guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                    throw JobStoreError(
                        "store '\(Self.redacted(url))': the port is not a number from 1 to 65535: \(form)")
                }
                port = p
            }
            if host.hasPrefix("[") && host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
            guard !host.isEmpty else { throw JobStoreError("store '\(Self.redacted(url))': no host: \(form)") }
            self.user = user
            self.password = password
            self.host = host
            self.port = port
            self.database = path.isEmpty ? user : try Self.decode(path, in: url)
            for pair in query.split(separator: "&") where !pair.isEmpty {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                let key = String(kv[0])
                let value = kv.count == 2 ? String(kv[1]) : ""
                let bad = { (want: String) in
                    JobStoreError("store '\(Self.redacted(url))': option \(key)=\(value): \(want)")
                }
                switch key {
                case "sslmode":
                    guard value == "disable" else {
                        throw bad("this build connects without TLS only: write sslmode=disable, or leave it out")
                    }
                case "connections":
                    guard let n = Int(value), (1...64).contains(n) else {
                        throw bad("give a number of connections 1...64")
                    }
                    self.connections = n
                case "outage":
                    guard let s = Double(value), s.isFinite, s >= 0 else { throw bad("give seconds >= 0") }
                    self.outage = s
                case "connect_timeout":
                    guard let s = Double(value), s.isFinite, s > 0 else { throw bad("give seconds > 0") }
                    self.connectTimeout = s
                case "query_timeout":
                    guard let s = Double(value), s.isFinite, s > 0 else { throw bad("give seconds > 0") }
                    self.queryTimeout = s
                default:
                    throw bad(
                        "unknown option; the options are sslmode=disable, connections, outage, connect_timeout, "
                            + "query_timeout")
                }
            }
        }

        /// The URL without its password, for messages and logs.
        static func redacted(_ url: String) -> String {
            guard let scheme = url.firstRange(of: "://"), let at = url[scheme.upperBound...].lastIndex(of: "@") else {
                return url
            }
            let userInfo = url[scheme.upperBound..<at]
            guard let colon = userInfo.firstIndex(of: ":") else { return url }
            return String(url[..<colon]) + ":***" + String(url[at...])
        }

        /// `host:port/database`, for messages.
        var place: String { "\(self.host):\(self.port)/\(self.database)" }

        private static func decode(_ part: Substring, in url: String) throws(JobStoreError) -> String {
            var bytes: [UInt8] = []
            var utf8 = Array(part.utf8)[...]
            while let byte = utf8.popFirst() {
                guard byte == UInt8(ascii: "%") else {
                    bytes.append(byte)
                    continue
                }
                guard utf8.count >= 2, let value = UInt8(String(decoding: utf8.prefix(2), as: UTF8.self), radix: 16)
                else {
                    throw JobStoreError(
                        "store '\(Self.redacted(url))': a '%' is not followed by two hex digits (percent-encode the user, password and database)"
                    )
                }
                bytes.append(value)
                utf8 = utf8.dropFirst(2)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
    }
#endif
