import TensorFormats

/// A shape as the reports print it: `[1, 4, 64, 64]`.
public func formatShape(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

/// Left-aligned columns, two spaces apart. A column is padded to at most `maximumColumnWidth`: a longer
/// cell (one very long tensor name) runs past its column on its own row instead of widening every row.
/// Cells are escaped as error lines are (`OneLine.escaped`): a name with a newline or an ANSI escape
/// cannot break the table or drive the terminal.
public func table(_ rows: [[String]]) -> String {
    guard let columns = rows.map(\.count).max() else { return "" }
    var widths = [Int](repeating: 0, count: columns)
    let counted = rows.map { row in row.map { OneLine.escaped($0) }.map { ($0, $0.count) } }
    for row in counted { for (i, cell) in row.enumerated() { widths[i] = min(max(widths[i], cell.1), maximumColumnWidth) } }
    var out = ""
    for (r, row) in counted.enumerated() {
        if r > 0 { out += "\n" }
        for (i, (cell, width)) in row.enumerated() {
            if i > 0 { out += "  " }
            out += cell
            if i < row.count - 1 { out += String(repeating: " ", count: max(0, widths[i] - width)) }
        }
    }
    return out
}

/// The widest a table column is padded to (an 80-column terminal still shows the next column).
public let maximumColumnWidth = 60
