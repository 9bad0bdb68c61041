// The check of tsan_mutex.c that scripts/sanitize runs before the suite: four threads change a class's fields under
// one Mutex, correctly. Under TSan this must give no report with the wrapper preloaded (without it, the Mutex's
// contended acquisitions are invisible to TSan and it reports races).
import Synchronization
import Glibc

final class Box: @unchecked Sendable { var n = 0; var a = [Int]() }
let m = Mutex<Int>(0)
let box = Box()
var threads: [pthread_t] = []
for _ in 0..<4 {
    var t = pthread_t()
    pthread_create(&t, nil, { _ in
        for i in 0..<20000 { m.withLock { _ in box.n += 1; box.a.append(i); if box.a.count > 100 { box.a.removeAll() } } }
        return nil
    }, nil)
    threads.append(t)
}
for t in threads { pthread_join(t, nil) }
print(m.withLock { _ in box.n })
