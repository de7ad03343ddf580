import ArgumentParser

/// The rule for every floating-point option: a finite number (`nan`, `inf` and `1e999` parse as Float
/// but would train NaN weights and exit 0). Each command's `validate()` lists its floating options here
/// first, then checks their ranges; comparisons alone let NaN through (`nan <= 0` is false).
func requireFinite(_ options: KeyValuePairs<String, Float?>) throws {
    for (name, value) in options {
        if let value, !value.isFinite { throw ValidationError("\(name) must be a finite number, got \(value)") }
    }
}
