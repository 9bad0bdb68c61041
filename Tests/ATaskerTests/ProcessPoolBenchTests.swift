import Glibc
import Synchronization
import Testing

@testable import ATasker

/// Measurements of the process pool with the fixture child echoing small payloads. They run only with
/// `ATASKER_MP_BENCH=1` (and are meaningful in a release build):
///
/// ```
/// ATASKER_MP_BENCH=1 swift test -c release -Xswiftc -enable-testing --filter ProcessPoolBenchTests
/// ```
@Suite(
    "Process pool: measurements",
    .enabled(if: getenv("ATASKER_MP_BENCH") != nil, "set ATASKER_MP_BENCH=1 to measure"),
    .serialized
)
struct ProcessPoolBenchTests {
    private func report(_ line: String) {
        let bytes = Array(("mp-bench: " + line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    }

    private func milliseconds(_ seconds: Double) -> String {
        let hundredths = Int((seconds * 100_000).rounded())
        return "\(hundredths / 100).\(hundredths % 100 < 10 ? "0" : "")\(hundredths % 100) ms"
    }

    private func microseconds(_ seconds: Double) -> String {
        "\(Int((seconds * 1_000_000).rounded())) µs"
    }

    @Test("round trip of one small call at a time")
    func roundTrip() throws {
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 1)
        let payload = "e" + String(repeating: "x", count: 32)
        for _ in 0..<500 {
            _ = try supervisor.submitProcess(fixtureCall(payload)).replyText()
        }
        var samples: [Double] = []
        let count = 20_000
        samples.reserveCapacity(count)
        for _ in 0..<count {
            let started = Monotonic.now()
            let task = supervisor.submitProcess(fixtureCall(payload))
            task.wait(timeout: 60)
            samples.append(Monotonic.now() - started)
            #expect(task.status == .completed)
        }
        samples.sort()
        let p50 = samples[count / 2]
        let p99 = samples[count * 99 / 100]
        let p999 = samples[count * 999 / 1000]
        self.report(
            "round trip (\(count) calls, 32-byte echo): p50 \(self.microseconds(p50)), p99 \(self.microseconds(p99)), p99.9 \(self.microseconds(p999))"
        )
        supervisor.finishProcessPool()
    }

    @Test("throughput with 2 children and many queued calls", arguments: [1, 4, 8, 16])
    func throughput(depth: Int) throws {
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 2)
        supervisor.processPoolSlot.withLock { $0 }?.state.withLock { $0.pipelineDepth = depth }
        let payload = "e" + String(repeating: "x", count: 32)
        let warm = (0..<2000).map { _ in supervisor.submitProcess(fixtureCall(payload)) }
        warm.forEach { $0.wait(timeout: 60) }
        let count = 200_000
        let remaining = Atomic<Int>(count)
        let done = Gate()
        let started = Monotonic.now()
        for _ in 0..<count {
            supervisor.submitProcess(fixtureCall(payload)).onFinish { _ in
                if remaining.subtract(1, ordering: .relaxed).newValue == 0 {
                    done.open()
                }
            }
        }
        let submitted = Monotonic.now() - started
        #expect(done.wait(timeout: 600))
        let elapsed = Monotonic.now() - started
        let info = supervisor.info().processPool
        self.report(
            "throughput (depth \(depth), 2 children, \(count) calls): \(Int(Double(count) / elapsed)) calls/s; submitting took \(self.milliseconds(submitted)); children \(info?.children.map(\.tasksRun) ?? [])"
        )
        supervisor.finishProcessPool()
    }

    @Test("kill to failure, and kill to a replacement child's first answer")
    func killLatency() throws {
        let service = ProcessService()
        let supervisor = TaskSupervisor.withFixturePool(poolSize: 1, service: service)
        var failures: [Double] = []
        var replacements: [Double] = []
        for _ in 0..<50 {
            let pid = try #require(Int32(try supervisor.submitProcess(fixtureCall("p")).replyText()))
            let sleeper = supervisor.submitProcess(fixtureCall("w60000"))
            #expect(service.events.wait(for: "notify sleeping \(pid)"))
            let killed = Monotonic.now()
            kill(pid, SIGKILL)
            sleeper.wait(timeout: 60)
            failures.append(Monotonic.now() - killed)
            #expect(sleeper.status == .failed)
            _ = try supervisor.submitProcess(fixtureCall("e")).replyText()
            replacements.append(Monotonic.now() - killed)
        }
        failures.sort()
        replacements.sort()
        self.report(
            "kill -> task failed: median \(self.milliseconds(failures[25])), max \(self.milliseconds(failures[49])); kill -> replacement answered: median \(self.milliseconds(replacements[25])), max \(self.milliseconds(replacements[49]))"
        )
        supervisor.finishProcessPool()
    }
}
