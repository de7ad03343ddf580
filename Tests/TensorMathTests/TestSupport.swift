import Foundation
import XCTest
@testable import TensorMath

/// Deterministic pseudo-random tensors (SplitMix64 -> roughly normal via a sum of uniforms).
struct SeededRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) }
    mutating func normal() -> Float { (0..<4).reduce(Float(0)) { acc, _ in acc + uniform() } * 1.7320508 - 3.4641016 }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        Tensor(shape: shape, data: (0..<Tensor.elementCount(shape)).map { _ in normal() * scale })
    }
}

/// sum(a * b) in Double: the scalar whose gradient a backward with cotangent b computes.
func dot(_ a: Tensor, _ b: Tensor) -> Double {
    precondition(a.shape == b.shape, "\(a.shape) vs \(b.shape)")
    var s = 0.0
    for i in 0..<a.count { s += Double(a.data[i]) * Double(b.data[i]) }
    return s
}

/// Max |actual - expected| relative to max |expected| (floored at 1e-6), the metric the engine issue uses.
func relativeMaxError(_ actual: Tensor, _ expected: Tensor) -> Float {
    XCTAssertEqual(actual.shape, expected.shape)
    guard actual.shape == expected.shape else { return .infinity }
    var diff: Float = 0
    for i in 0..<actual.count { diff = max(diff, abs(actual.data[i] - expected.data[i])) }
    return diff / max(expected.maxAbs(), 1e-6)
}

func assertClose(_ actual: Tensor?, _ expected: Tensor, tolerance: Float, _ what: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    guard let actual else { return XCTFail("\(what): missing", file: file, line: line) }
    let err = relativeMaxError(actual, expected)
    XCTAssertLessThanOrEqual(err, tolerance, "\(what): relative max error \(err)", file: file, line: line)
}

/// Central finite differences of `f` at `coordinates` random positions of `x`, compared with `analytic`:
/// fails when max |numeric - analytic| over the checked positions exceeds `tolerance` times the largest
/// analytic magnitude among them.
func checkGradient(_ what: String, at x: Tensor, analytic: Tensor?, coordinates: Int = 24, step: Float = 1e-2,
                   tolerance: Double = 1e-2, seed: UInt64 = 7, file: StaticString = #filePath, line: UInt = #line,
                   _ f: (Tensor) -> Double) {
    guard let analytic else { return XCTFail("\(what): no analytic gradient", file: file, line: line) }
    XCTAssertEqual(analytic.shape, x.shape, what, file: file, line: line)
    var rng = SeededRandom(seed)
    var maxErr = 0.0, maxRef = 0.0
    let picks = x.count <= coordinates ? Array(0..<x.count) : (0..<coordinates).map { _ in Int(rng.next() % UInt64(x.count)) }
    for i in picks {
        var plus = x, minus = x
        plus.data[i] += step
        minus.data[i] -= step
        let numeric = (f(plus) - f(minus)) / Double(2 * step)
        maxErr = max(maxErr, abs(numeric - Double(analytic.data[i])))
        maxRef = max(maxRef, abs(Double(analytic.data[i])))
    }
    XCTAssertGreaterThan(maxRef, 0, "\(what): analytic gradient is zero at every checked position", file: file, line: line)
    XCTAssertLessThanOrEqual(maxErr, tolerance * max(maxRef, 1e-3),
                             "\(what): finite-difference error \(maxErr) vs gradient scale \(maxRef)", file: file, line: line)
}

/// The PyTorch goldens written by Fixtures/make_goldens.py.
struct Goldens {
    struct Case {
        let raw: [String: Any]
        func tensor(_ key: String) -> Tensor {
            let d = raw[key] as! [String: Any]
            return Tensor(shape: (d["shape"] as! [NSNumber]).map(\.intValue),
                          data: (d["data"] as! [NSNumber]).map(\.floatValue))
        }
        func int(_ key: String) -> Int { (raw[key] as! NSNumber).intValue }
        func float(_ key: String) -> Float { (raw[key] as! NSNumber).floatValue }
        func bool(_ key: String) -> Bool { (raw[key] as! NSNumber).boolValue }
    }

    nonisolated(unsafe) static let cases: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/torch_goldens.json")
        let data = try! Data(contentsOf: url)
        let root = try! JSONSerialization.jsonObject(with: data) as! [String: Any]
        return root["cases"] as! [String: Any]
    }()

    static func named(_ name: String) -> Case { Case(raw: cases[name] as! [String: Any]) }
}
