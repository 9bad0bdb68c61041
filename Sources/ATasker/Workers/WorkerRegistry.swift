import Synchronization

/// The workers of one ``TaskSupervisor``, by name: it keeps names unique and lists the workers.
///
/// The registry holds workers weakly: a worker that nobody references any more (and that is not
/// running, since a running worker keeps itself alive) disappears from the list and frees its name.
/// Entries of released workers are pruned lazily, when names are reserved or listed.
///
/// Reading a weak reference makes a temporary strong one, and dropping it may release the worker
/// while the lock is held; so a worker's `deinit` never takes this lock.
final class WorkerRegistry: Sendable {
    /// One name's holder.
    struct Entry: Sendable {
        /// The worker's registration number, increasing in creation order.
        let id: Int
        /// The worker, once its initializer has attached it (`nil` while it is being created, or
        /// after it was released).
        weak var worker: Worker?
        /// Whether the worker has been attached: before that, the name is reserved even though
        /// `worker` is `nil`.
        var isAttached: Bool
    }

    struct State: Sendable {
        var entries: [String: Entry] = [:]
        var nextID = 1
        var nextGeneratedName = 1
        /// The entry count at which `reserve` next prunes released workers.
        var pruneAt = 64

        /// Drops the entries of released workers.
        mutating func prune() {
            self.entries = self.entries.filter { !$0.value.isAttached || $0.value.worker != nil }
        }

        /// Whether `name` is held by a live or reserved entry.
        func isTaken(_ name: String) -> Bool {
            guard let entry = self.entries[name] else {
                return false
            }
            return !entry.isAttached || entry.worker != nil
        }
    }

    private let state = Mutex(State())

    init() {}

    /// Reserves a name for a worker being created: `name`, or a generated `worker-N`.
    ///
    /// - Returns: The registration number and the name.
    /// - Throws: ``WorkerError/Code/nameInUse`` if `name` is taken.
    func reserve(_ name: String?) throws -> (id: Int, name: String) {
        try self.state.withLock { state in
            if state.entries.count >= state.pruneAt {
                state.prune()
                state.pruneAt = max(64, 2 * state.entries.count)
            }
            let chosen: String
            if let name {
                guard !state.isTaken(name) else {
                    throw WorkerError(
                        .nameInUse,
                        "a worker named \"\(name)\" already exists in this supervisor; choose another name"
                    )
                }
                chosen = name
            } else {
                var candidate = "worker-\(state.nextGeneratedName)"
                state.nextGeneratedName += 1
                while state.isTaken(candidate) {
                    candidate = "worker-\(state.nextGeneratedName)"
                    state.nextGeneratedName += 1
                }
                chosen = candidate
            }
            let id = state.nextID
            state.nextID += 1
            state.entries[chosen] = Entry(id: id, worker: nil, isAttached: false)
            return (id, chosen)
        }
    }

    /// Attaches a newly created worker to the name reserved for it.
    func attach(_ worker: Worker, id: Int, name: String) {
        self.state.withLock { state in
            if state.entries[name]?.id == id {
                state.entries[name] = Entry(id: id, worker: worker, isAttached: true)
            }
        }
    }

    /// Moves a worker to a new name.
    ///
    /// - Throws: ``WorkerError/Code/nameInUse`` if `newName` is held by another worker.
    func rename(id: Int, from oldName: String, to newName: String) throws {
        guard oldName != newName else {
            return
        }
        try self.state.withLock { state in
            guard !state.isTaken(newName) else {
                throw WorkerError(
                    .nameInUse,
                    "cannot rename worker \"\(oldName)\": a worker named \"\(newName)\" already exists"
                )
            }
            guard let entry = state.entries[oldName], entry.id == id else {
                return
            }
            state.entries[oldName] = nil
            state.entries[newName] = entry
        }
    }

    /// The live workers, in creation order.
    var workers: [Worker] {
        let live = self.state.withLock { state -> [(Int, Worker)] in
            // Drop the names of released workers while we are here.
            state.prune()
            return state.entries.values.compactMap { entry in entry.worker.map { (entry.id, $0) } }
        }
        return live.sorted { $0.0 < $1.0 }.map(\.1)
    }

    /// The live worker called `name`.
    func worker(named name: String) -> Worker? {
        self.state.withLock { $0.entries[name]?.worker }
    }
}
