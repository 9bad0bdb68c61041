extension Duration {
    /// The duration as a number of seconds, for the API whose times are `Double` seconds.
    package var inSeconds: Double {
        let (seconds, attoseconds) = self.components
        return Double(seconds) + Double(attoseconds) * 1e-18
    }
}
