/// An error that a Swift function registered with ``LuaHost/register(_:_:)`` throws so that Lua code can tell its
/// kind.
///
/// Every error a registered function throws (but a ``LuaError``, raised as it is) reaches Lua as a table with the
/// metatable `atasker.Error`: `e.code` (``luaCode``), `e.message` (`file:line: name: ` and ``luaMessage``),
/// `e["function"]` (the registered name), and the fields of ``luaFields``; `tostring(e)` gives the message, so an
/// error that nobody catches is logged as a message is. An error that does not conform to this protocol gets its
/// Swift type's name as its code (`"DecodingError"`) and its description as its message.
///
/// ```swift
/// enum StoreError: LuaStructuredError {
///     case notFound(key: String)
///     var luaCode: String { "not_found" }
///     var luaMessage: String { if case .notFound(let key) = self { "no value for \(key)" } else { "" } }
///     var luaFields: [String: LuaValue] { if case .notFound(let key) = self { ["key": .string(LuaString(key))] } else { [:] } }
/// }
/// ```
/// ```lua
/// local ok, e = pcall(require("host").fetch, "k")
/// if not ok and e.code == "not_found" then ... end
/// ```
public protocol LuaStructuredError: Error {
    /// `e.code` in Lua: a short, stable name of the kind of error.
    var luaCode: String { get }
    /// The message without the place and the function's name; by default the error's description.
    var luaMessage: String { get }
    /// More fields of the error table (`e.key`, `e.status`); by default none. `code`, `message` and `function` are
    /// set by the host and win over fields of the same name.
    var luaFields: [String: LuaValue] { get }
}

extension LuaStructuredError {
    public var luaMessage: String { "\(self)" }
    public var luaFields: [String: LuaValue] { [:] }
}

/// A registered function's thrown error, as the table that Lua gets.
struct HostFunctionFailure: Error {
    /// The message for a caller that cannot take the table.
    let message: String
    let table: LuaTable

    init(function: String, error: any Error) {
        let code: String
        let text: String
        var fields: [String: LuaValue] = [:]
        if let structured = error as? any LuaStructuredError {
            code = structured.luaCode
            text = structured.luaMessage
            fields = structured.luaFields
        } else {
            code = String(describing: type(of: error))
            text = "\(error)"
        }
        self.message = "\(function): \(text)"
        var table = LuaTable()
        for (key, value) in fields { table[.string(LuaString(key))] = value }
        table["code"] = .string(LuaString(code))
        table["message"] = .string(LuaString(self.message))
        table["function"] = .string(LuaString(function))
        self.table = table
    }
}
