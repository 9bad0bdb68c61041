import ATasker

/// Echoes every call.
final class EchoHandler: ProcessChildHandler {
    func call(definitions: [ProcessDefinition], payload: [UInt8]) -> ProcessReply {
        .success(payload)
    }
}

ProcessChild.runIfChild { _ in EchoHandler() }
