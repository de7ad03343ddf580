import CBLAS

/// Dense linear algebra in float64 through OpenBLAS's LAPACK: the closed-form edits (UCE) solve a
/// normal-equation system, and a weight difference is factored into a low-rank adapter by its SVD.
/// Matrices are row-major `[Double]`; LAPACK is column-major, so each call passes the transpose it
/// needs (a row-major m×n matrix is the column-major n×m matrix of its transpose).
public enum LinearAlgebra {
    /// A LAPACK routine's nonzero `info`: for `dposv` a leading minor that is not positive definite,
    /// for `dgesdd` a decomposition that did not converge.
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var routine: String
        public var info: Int32
        public var description: String { "\(routine) returned info \(info)" }
    }

    /// K with K·A = R for a symmetric positive definite A (n×n) and R (rows×n), both row-major: the
    /// right division R·A⁻¹ by Cholesky (`dposv`), never an explicit inverse.
    public static func solveRight(_ r: [Double], byPositiveDefinite a: [Double], n: Int) throws(Failure) -> [Double] {
        // K·A = R with A symmetric ⇔ A·Kᵀ = Rᵀ. Column-major Rᵀ (n×n) is row-major R's buffer, and the
        // column-major solution Kᵀ is row-major K's buffer: no transposition is needed on either side.
        precondition(a.count == n * n && r.count % n == 0, "solveRight: sizes")
        var matrix = a, rhs = r
        var order = Int32(n), columns = Int32(r.count / n), lda = Int32(n), ldb = Int32(n), info: Int32 = 0
        var uplo = CChar(UInt8(ascii: "U"))
        dposv_(&uplo, &order, &columns, &matrix, &lda, &rhs, &ldb, &info, 1)
        guard info == 0 else { throw Failure(routine: "dposv", info: info) }
        return rhs
    }

    /// The thin SVD of a row-major m×n matrix: U (m×k, row-major), the k = min(m, n) singular values in
    /// decreasing order, and Vᵀ (k×n, row-major), with A = U·diag(s)·Vᵀ (divide and conquer, `dgesdd`).
    public static func svd(_ a: [Double], rows m: Int, columns n: Int) throws(Failure) -> (u: [Double], s: [Double], vt: [Double]) {
        precondition(a.count == m * n, "svd: sizes")
        // LAPACK sees Aᵀ (n×m column-major). Aᵀ = U'·S·V'ᵀ gives A = V'·S·U'ᵀ: A's U is V' and A's Vᵀ is U'ᵀ.
        let k = min(m, n)
        guard k > 0 else { return ([], [], []) }
        var matrix = a
        var rowsT = Int32(n), colsT = Int32(m), lda = Int32(n), ldu = Int32(n), ldvt = Int32(k), info: Int32 = 0
        var s = [Double](repeating: 0, count: k)
        var uT = [Double](repeating: 0, count: n * k)    // U' (n×k column-major) = A's Vᵀ (k×n row-major)
        var vtT = [Double](repeating: 0, count: k * m)   // V'ᵀ (k×m column-major) = A's U (m×k row-major)
        var job = CChar(UInt8(ascii: "S"))
        var iwork = [Int32](repeating: 0, count: 8 * k)
        var query = 0.0, lwork: Int32 = -1
        dgesdd_(&job, &rowsT, &colsT, &matrix, &lda, &s, &uT, &ldu, &vtT, &ldvt, &query, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw Failure(routine: "dgesdd", info: info) }
        lwork = Int32(query.rounded(.up))
        var work = [Double](repeating: 0, count: max(1, Int(lwork)))
        dgesdd_(&job, &rowsT, &colsT, &matrix, &lda, &s, &uT, &ldu, &vtT, &ldvt, &work, &lwork, &iwork, &info, 1)
        guard info == 0 else { throw Failure(routine: "dgesdd", info: info) }
        return (vtT, s, uT)
    }

    /// C = A·B for row-major A (m×k) and B (k×n), in float64 (`cblas_dgemm`).
    public static func multiply(_ a: [Double], _ b: [Double], m: Int, k: Int, n: Int) -> [Double] {
        precondition(a.count == m * k && b.count == k * n, "multiply: sizes")
        var c = [Double](repeating: 0, count: m * n)
        guard m > 0, n > 0, k > 0 else { return c }
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(n), 0, &c, Int32(n))
        return c
    }
}
