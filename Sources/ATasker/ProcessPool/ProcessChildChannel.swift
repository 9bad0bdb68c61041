import CProcessSpawn
import Glibc
import Synchronization

/// The child's end of the pool protocol: blocking reads and writes on the protocol descriptor.
///
/// Only the child's main thread uses it, from ``ProcessChild/runIfChild(_:)`` until the process exits
/// (the watcher thread only polls the descriptor number). A `call` or `stop` frame that arrives while a
/// ``ProcessChild/request(_:)`` waits for its response is kept in ``stash`` and served afterwards, in order.
final class ProcessChildChannel {
    let descriptor: Int32
    /// The main thread, the only one allowed to use the channel.
    let owner = pthread_self()
    // The mutable fields are only used by the main thread (see the `@unchecked Sendable` extension).
    private var reader = ProcessFrameReader()
    private var stash: [(kind: ProcessFrame.Kind, body: [UInt8])] = []
    private var output: [UInt8] = []
    private var nextRequestID: UInt64 = 1
    /// Whether a call is running (``ProcessChild/request(_:)`` is refused otherwise).
    var inCall = false

    /// Whether the calling thread may use the channel now: inside a call, on the main thread.
    var isUsableHere: Bool {
        self.inCall && pthread_equal(self.owner, pthread_self()) != 0
    }

    init(descriptor: Int32) {
        self.descriptor = descriptor
    }

    /// The next frame, from the stash first; `nil` at end-of-file. A frame that breaks the protocol ends the
    /// process.
    func next() -> (kind: ProcessFrame.Kind, body: [UInt8])? {
        if !self.stash.isEmpty {
            return self.stash.removeFirst()
        }
        return self.receive()
    }

    /// Sends one frame built by `build`, blocking until it is written. A write error (the parent is gone)
    /// ends the process.
    func send(_ build: (inout [UInt8]) -> Void) {
        self.output.removeAll(keepingCapacity: true)
        build(&self.output)
        var offset = 0
        while offset < self.output.count {
            let sent = self.output.withUnsafeBytes { bytes in
                Glibc.send(self.descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent < 0 {
                if errno == EINTR {
                    continue
                }
                ProcessChild.exitQuietly()
            }
            offset += sent
        }
    }

    /// Sends a request and waits for its response, stashing the frames that come before it.
    func request(_ payload: [UInt8]) throws(ProcessChildError) -> [UInt8] {
        let id = self.nextRequestID
        self.nextRequestID += 1
        self.send { ProcessFrame.appendRequest(id: id, payload: payload, to: &$0) }
        while true {
            guard let frame = self.receive() else {
                ProcessChild.exitQuietly()
            }
            switch frame.kind {
            case .response:
                let answered: UInt64
                let success: Bool
                let answer: [UInt8]
                do {
                    (answered, success, answer) = try ProcessFrame.readAnswer(frame.body[...], kind: .response)
                } catch {
                    ProcessChild.protocolFailure(error.detail)
                }
                guard answered == id else {
                    ProcessChild.protocolFailure("a response to request \(answered) while waiting for \(id)")
                }
                if success {
                    return answer
                }
                throw ProcessChildError(ProcessPoolError.text(answer))
            case .call, .stop:
                self.stash.append(frame)
            default:
                ProcessChild.protocolFailure("unexpected \(frame.kind) frame while waiting for a response")
            }
        }
    }

    /// Reads until a whole frame is available.
    private func receive() -> (kind: ProcessFrame.Kind, body: [UInt8])? {
        while true {
            do {
                if let frame = try self.reader.next() {
                    return (frame.kind, Array(frame.body))
                }
            } catch {
                ProcessChild.protocolFailure(error.detail)
            }
            let received = withUnsafeTemporaryAllocation(byteCount: 65536, alignment: 16) { chunk -> Int in
                let count = recv(self.descriptor, chunk.baseAddress, chunk.count, 0)
                if count > 0 {
                    self.reader.append(UnsafeRawBufferPointer(rebasing: chunk[0..<count]))
                }
                return count
            }
            if received == 0 {
                return nil
            }
            if received < 0 {
                if errno == EINTR {
                    continue
                }
                return nil
            }
        }
    }
}

/// `ProcessChildChannel` may sit in a global `Mutex` because only the child's main thread ever uses it:
/// 1. it is created and installed by ``ProcessChild/runIfChild(_:)`` on the main thread;
/// 2. ``ProcessChild/request(_:)`` and ``ProcessChild/notify(_:)`` use it only from inside a call and on
///    that same thread (they check ``ProcessChildChannel/isUsableHere`` first; `inCall` is only written by
///    the main thread, and another thread reading it sees `owner` differ and stops there);
/// 3. the watcher thread never touches it.
extension ProcessChildChannel: @unchecked Sendable {}
