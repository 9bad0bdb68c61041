internal import CLuaShim

/// A case of a closed C enum of the shim (`ATL_CLOSED_ENUM`) made from a number that came from C or from bytes, or
/// nil when no case has it.
///
/// Swift's `init?(rawValue:)` of an imported C enum does not check its argument: a number that no case has would
/// make a value that traps in the first `switch` over it. The shim's closed enums number their cases without gaps,
/// so a number between the first case and the last one is a case.
func closedEnum<E: RawRepresentable>(_ raw: UInt32, first: E, last: E) -> E? where E.RawValue == UInt32 {
    guard raw >= first.rawValue, raw <= last.rawValue else { return nil }
    return E(rawValue: raw)
}

/// The handle kind numbered `kind`, or nil when the shim has none of that number. (Here rather than with the other
/// `HostCore` helpers so that the codec's Swift reader needs nothing else: the fuzz target compiles just these files.)
func shimHandleKind(_ kind: Int) -> atl_HandleKind? {
    guard let raw = UInt32(exactly: kind) else { return nil }
    return closedEnum(raw, first: .ATL_H_SUPERVISOR, last: .ATL_H_JOB)
}
