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
