import Foundation
import Testing

/// A pool child leads a process group of its own, which holds what it starts: nothing of the child's tree outlives
/// the host by more than a second, whether the host stops gracefully or is killed, and whether the child is
/// stopped (SIGSTOP) or has a grandchild (`os.execute("sleep 1000")`). The tests look at `/proc` for what is left of
/// the child's group; they signal only pids that they read from the program's output.
@Suite("atasker-lua, the process pool: a child's process group ends with the host", .serialized)
struct ProcessTreeCLITests {
    /// The fixture program: with `subreaper`, it runs a command as a child subreaper (as a process manager or a
    /// container's init may be), so that the kernel's rule for orphaned process groups does not end a stopped child
    /// for us; it exits once every process of the tree is reaped.
    static var fixture: String {
        URL(fileURLWithPath: CLIRun.binary).deletingLastPathComponent().appendingPathComponent("ProcessChildFixture")
            .path
    }

    @Test("a stopped child dies when its host is killed with SIGKILL, even under a subreaper in the same session")
    func stoppedChildHostKilled() throws {
        var tree = Tree()
        defer { tree.cleanUp() }
        var killedAt = Date()
        let run = try CLIRun.run(
            ["subreaper", CLIRun.binary, "Tests/Fixtures/mp_tree.lua", "idle", "60"], timeout: 60,
            executable: Self.fixture
        ) { _, out in
            guard let host = Self.number(after: "launched pid ", in: out), let child = Self.childPID(out) else {
                Issue.record("no pids in: \(out.snapshot())")
                return
            }
            tree.child = child
            kill(child, SIGSTOP)
            #expect(Self.waitState(child, "T"), "child \(child) did not stop")
            killedAt = Date()
            kill(host, SIGKILL)
        }
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        // The subreaper exits only once it has reaped the whole tree: the stopped child with it.
        #expect(Date().timeIntervalSince(killedAt) < 5, "the tree outlived its host: \(tree.members())")
        #expect(tree.child > 0 && tree.waitAllGone(seconds: 2), "left: \(tree.members())")
    }

    @Test("a stopped idle child ends at a graceful stop without waiting for its stop timeout (it is continued)")
    func stoppedChildGracefulStop() throws {
        var tree = Tree()
        defer { tree.cleanUp() }
        var sentAt = Date()
        let run = try CLIRun.run(["--stop-timeout", "60", "Tests/Fixtures/mp_tree.lua", "idle", "60"], timeout: 90) {
            process, out in
            guard let child = Self.childPID(out) else {
                Issue.record("no child pid in: \(out.snapshot())")
                return
            }
            tree.child = child
            kill(child, SIGSTOP)
            #expect(Self.waitState(child, "T"), "child \(child) did not stop")
            sentAt = Date()
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(run.signaled && run.status == SIGTERM, "status \(run.status): \(run.stderr)")
        // Without SIGCONT the child reads its stop frame only when it is killed, 60 s later.
        #expect(Date().timeIntervalSince(sentAt) < 20, "\(run.stderr)")
        #expect(tree.child > 0 && tree.waitAllGone(seconds: 2), "left: \(tree.members())")
        #expect(!run.stderr.contains("killed by SIGKILL"), "the child was killed, not stopped: \(run.stderr)")
    }

    @Test("a grandchild (os.execute) dies when its host is killed with SIGKILL")
    func grandchildHostKilled() throws {
        var tree = Tree()
        defer { tree.cleanUp() }
        var killedAt = Date()
        let run = try CLIRun.run(
            ["subreaper", CLIRun.binary, "Tests/Fixtures/mp_tree.lua", "grandchild"], timeout: 60,
            executable: Self.fixture
        ) { _, out in
            guard let host = Self.number(after: "launched pid ", in: out), let child = Self.childPID(out) else {
                Issue.record("no pids in: \(out.snapshot())")
                return
            }
            tree.child = child
            #expect(out.waitFor("grandchild started"), "no grandchild")
            tree.expectGrandchild()
            killedAt = Date()
            kill(host, SIGKILL)
        }
        #expect(run.status == 0, "\(run.stdout)\n\(run.stderr)")
        #expect(Date().timeIntervalSince(killedAt) < 5, "the tree outlived its host: \(tree.members())")
        #expect(tree.child > 0 && tree.waitAllGone(seconds: 2), "left: \(tree.members())")
    }

    @Test("a grandchild (os.execute) dies with its child at a graceful stop (SIGTERM)")
    func grandchildGracefulStop() throws {
        var tree = Tree()
        defer { tree.cleanUp() }
        let run = try CLIRun.run(["--stop-timeout", "1", "Tests/Fixtures/mp_tree.lua", "grandchild", "1"], timeout: 60)
        {
            process, out in
            guard let child = Self.childPID(out) else {
                Issue.record("no child pid in: \(out.snapshot())")
                return
            }
            tree.child = child
            #expect(out.waitFor("grandchild started"), "no grandchild")
            tree.expectGrandchild()
            kill(process.processIdentifier, SIGTERM)
        }
        #expect(run.signaled && run.status == SIGTERM, "status \(run.status): \(run.stderr)")
        #expect(tree.child > 0 && tree.waitAllGone(seconds: 2), "left: \(tree.members())")
    }

    // MARK: - Helpers

    static func childPID(_ out: Collector) -> Int32? {
        self.number(after: "child pid ", in: out)
    }

    /// The pid on the first line that starts with `prefix`; nil when there is none, or it is 0 or 1.
    static func number(after prefix: String, in out: Collector) -> Int32? {
        guard let rest = out.line(startingWith: prefix), let pid = Int32(rest.prefix { $0.isNumber }), pid > 1 else {
            return nil
        }
        return pid
    }

    /// Waits (polling `/proc`: nothing signals a change of another process's state) for `pid` to be in `state`.
    static func waitState(_ pid: Int32, _ state: Character, seconds: Double = 10) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if ProcStat(pid)?.state == state { return true }
            usleep(10_000)
        } while Date() < deadline
        return false
    }
}

/// One line of `/proc/PID/stat`: the fields that the tests need.
struct ProcStat {
    let pid: Int32
    let command: String
    let state: Character
    let group: Int32

    init?(_ pid: Int32) {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let open = text.firstIndex(of: "("), let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 3, let state = fields[0].first, let group = Int32(fields[2]) else { return nil }
        self.pid = pid
        self.command = String(text[text.index(after: open)..<close])
        self.state = state
        self.group = group
    }

    /// A zombie (or dead) process has ended: only its parent's reaping is left.
    var ended: Bool { self.state == "Z" || self.state == "X" }

    /// Every process in group `group` that has not ended.
    static func living(inGroup group: Int32) -> [ProcStat] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return names.compactMap { Int32($0) }.compactMap { ProcStat($0) }.filter { $0.group == group && !$0.ended }
    }
}

/// The processes of one pool child's tree: the child's process group, and what the test saw of it.
struct Tree {
    var child: Int32 = 0
    var seen: Set<Int32> = []

    /// The living processes of the child's group, and any seen before that live on.
    func members() -> [String] {
        guard self.child > 1 else { return [] }
        var pids = Set(ProcStat.living(inGroup: self.child).map(\.pid))
        pids.formUnion(self.seen.filter { ProcStat($0).map { !$0.ended } ?? false })
        return pids.sorted().compactMap { ProcStat($0) }.map { "\($0.pid) \($0.command) \($0.state)" }
    }

    /// Waits (polling `/proc`: the shell prints its line before it execs `sleep`) until the grandchild `sleep` is
    /// in the child's group, and records the group's members.
    mutating func expectGrandchild() {
        let deadline = Date().addingTimeInterval(10)
        var members = ProcStat.living(inGroup: self.child)
        while !members.contains(where: { $0.command == "sleep" }) && Date() < deadline {
            usleep(10_000)
            members = ProcStat.living(inGroup: self.child)
        }
        self.seen.formUnion(members.map(\.pid))
        #expect(members.contains { $0.command == "sleep" }, "no sleep in the group: \(self.members())")
    }

    /// Waits (polling `/proc`) until no process of the tree lives.
    func waitAllGone(seconds: Double) -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        repeat {
            if self.members().isEmpty { return true }
            usleep(20_000)
        } while Date() < deadline
        return self.members().isEmpty
    }

    /// A failed test leaves nothing behind: kills what lives of the processes it read.
    func cleanUp() {
        guard self.child > 1 else { return }
        for stat in ProcStat.living(inGroup: self.child) where stat.pid > 1 {
            kill(stat.pid, SIGCONT)
            kill(stat.pid, SIGKILL)
        }
        for pid in self.seen where pid > 1 && !(ProcStat(pid)?.ended ?? true) {
            kill(pid, SIGKILL)
        }
    }
}
