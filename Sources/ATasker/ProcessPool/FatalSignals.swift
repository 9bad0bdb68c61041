internal import CProcessSpawn

/// Fatal signals as a C program has them, in place of Swift's backtracer (which, for a `kill -SEGV` from outside,
/// prints a long report and lets the process go on, or hangs): one line on standard error, then death by the
/// signal, so that a shell, systemd or the process pool sees it. The command line and every pool child install it.
package enum FatalSignals {
    /// Installs the handlers for SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGTRAP, SIGQUIT and SIGSYS; `label`
    /// starts the line (`atasker-lua (pid 12): killed by SIGSEGV, sent by pid 34`).
    package static func install(label: String) {
        atp_fatal_signals(label)
    }
}
