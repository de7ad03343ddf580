/// CLIP's byte-pair encoder: a vocabulary, ranked merges, and the `</w>` end-of-word suffix.
///
/// The merge loop is tokenizers' `Word::merge_all` (the code behind transformers' CLIPTokenizer): a queue
/// of adjacent pairs ordered by merge rank, then position; a popped pair is applied only if both symbols
/// are still there, and the pairs it forms with its neighbours join the queue. That is O(n log n) in the
/// word length, so a hostile 1 MB "word" costs milliseconds, not the quadratic rescans of OpenAI's loop
/// (which gives the same ids: both always apply the lowest-ranked pair, leftmost first).
struct BPEModel: Sendable {
    /// Token string to id.
    let vocabulary: [String: Int32]
    /// (left id, right id) packed into one key -> (rank, merged id).
    let merges: [UInt64: (rank: Int32, merged: Int32)]
    /// Ids of each byte's character, alone and with `</w>` (nil where the vocabulary lacks it).
    let byteIDs: [Int32?]
    let finalByteIDs: [Int32?]
    /// The id used for a character missing from the vocabulary (tokenizers' `unk_token`).
    let unknownID: Int32?

    static let endOfWord = "</w>"

    init(vocabulary: [String: Int32], merges: [UInt64: (rank: Int32, merged: Int32)], unknownToken: String) {
        self.vocabulary = vocabulary
        self.merges = merges
        byteIDs = ByteLevel.characters.map { vocabulary[$0] }
        finalByteIDs = ByteLevel.characters.map { vocabulary[$0 + Self.endOfWord] }
        unknownID = vocabulary[unknownToken]
    }

    static func key(_ left: Int32, _ right: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: left)) << 32 | UInt64(UInt32(bitPattern: right))
    }

    /// The ids of one pre-tokenized word (its UTF-8 bytes), or nil when a byte's character is missing
    /// from the vocabulary and there is no unknown token to stand for it.
    func encode(word: [UInt8]) -> [Int32]? {
        guard !word.isEmpty else { return [] }
        var symbols: [Symbol] = []
        symbols.reserveCapacity(word.count)
        for (i, byte) in word.enumerated() {
            let isLast = i == word.count - 1
            guard let id = (isLast ? finalByteIDs[Int(byte)] : byteIDs[Int(byte)]) ?? unknownID else { return nil }
            symbols.append(Symbol(id: id, previous: i - 1, next: isLast ? -1 : i + 1, alive: true))
        }
        var queue = PairQueue()
        for i in 0..<(symbols.count - 1) {
            if let merge = merges[Self.key(symbols[i].id, symbols[i + 1].id)] {
                queue.push(Pair(rank: merge.rank, position: i, merged: merge.merged))
            }
        }
        while let top = queue.pop() {
            let left = symbols[top.position]
            guard left.alive, left.next >= 0 else { continue }
            let right = symbols[left.next]
            guard let merge = merges[Self.key(left.id, right.id)], merge.merged == top.merged else { continue }
            symbols[top.position].id = merge.merged
            symbols[top.position].next = right.next
            symbols[left.next].alive = false
            if right.next >= 0 { symbols[right.next].previous = top.position }
            let current = symbols[top.position]
            if current.previous >= 0, let m = merges[Self.key(symbols[current.previous].id, current.id)] {
                queue.push(Pair(rank: m.rank, position: current.previous, merged: m.merged))
            }
            if current.next >= 0, let m = merges[Self.key(current.id, symbols[current.next].id)] {
                queue.push(Pair(rank: m.rank, position: top.position, merged: m.merged))
            }
        }
        return symbols.filter(\.alive).map(\.id)
    }

    private struct Symbol {
        var id: Int32
        var previous: Int
        var next: Int
        var alive: Bool
    }
}

/// A candidate merge: lower rank first, then the leftmost position (tokenizers' `Merge` ordering).
struct Pair {
    var rank: Int32
    var position: Int
    var merged: Int32

    func precedes(_ other: Pair) -> Bool {
        rank != other.rank ? rank < other.rank : position < other.position
    }
}

/// A binary min-heap of pairs.
struct PairQueue {
    private var items: [Pair] = []

    mutating func push(_ pair: Pair) {
        items.append(pair)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].precedes(items[parent]) else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Pair? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        guard !items.isEmpty else { return top }
        items[0] = last
        var parent = 0
        while true {
            let left = 2 * parent + 1, right = left + 1
            var best = parent
            if left < items.count, items[left].precedes(items[best]) { best = left }
            if right < items.count, items[right].precedes(items[best]) { best = right }
            if best == parent { break }
            items.swapAt(parent, best)
            parent = best
        }
        return top
    }
}
