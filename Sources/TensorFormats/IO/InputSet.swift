#if canImport(Glibc)
import Glibc
#endif
import Foundation

/// The one output-safety rule: no output of a command (OUT, `--state`, `--emit-mask`, a manifest, a
/// log, a grid, shards) may be one of its inputs, or lie inside an input folder being read.
///
/// A command declares its inputs and outputs before any work (`declare`), which refuses a clash with
/// `output-is-input`; every `OutputFile` and log opened afterwards checks its path against the same
/// set, so an output the command forgot to declare (a shard name) is caught too.
public struct InputSet: Sendable {
    /// An input as the user named it, for messages.
    struct Input: Sendable {
        var path: String
        var role: String
    }

    /// Regular files read (a sharded index and its shards, a file redirected to standard input).
    private var files: [FileIdentity: Input] = [:]
    /// Folders read (model folders), resolved; no output may be written inside them.
    private var folders: [(path: String, input: Input)] = []
    /// Folders of sharded indexes: no sharded output may be written into them.
    private var shardFolders: [(path: String, input: Input)] = []

    public init() {}

    /// Adds an input named by `path` (`-` is standard input) in its `role` (for messages: "STUDENT",
    /// "--teacher"). Paths that do not exist are ignored here: opening them fails later.
    public mutating func add(_ path: String?, role: String) {
        guard let path else { return }
        let input = Input(path: path, role: role)
        if path == "-" {
            var st = stat()
            if fstat(STDIN_FILENO, &st) == 0, st.st_mode & S_IFMT == S_IFREG {
                files[FileIdentity(st)] = input
            }
            return
        }
        guard let st = Sys.fileStatus(path: path) else { return }
        if st.st_mode & S_IFMT == S_IFDIR {
            if let real = Sys.realPath(path) { folders.append((real, input)) }
            return
        }
        guard st.st_mode & S_IFMT == S_IFREG else { return }
        files[FileIdentity(st)] = input
        if path.hasSuffix(".index.json") { addShards(of: path, input: input) }
    }

    /// The shards a `*.index.json` names (its `weight_map` values), read from the index's folder.
    private mutating func addShards(of index: String, input: Input) {
        let folder = (index as NSString).deletingLastPathComponent
        if let real = Sys.realPath(folder.isEmpty ? "." : folder) { shardFolders.append((real, input)) }
        guard let data = try? MappedFile.contents(of: index),
              case .object(let map)? = (try? JSONParser.parse(String(decoding: data, as: UTF8.self)))?["weight_map"] else { return }
        for shard in Set(map.compactMap(\.value.stringValue)) {
            let path = (folder as NSString).appendingPathComponent(shard)
            if let st = Sys.fileStatus(path: path), st.st_mode & S_IFMT == S_IFREG { files[FileIdentity(st)] = input }
        }
    }

    /// Refuses `path` as an output given by `option` ("OUT", "--state") when it is an input, or a
    /// folder or file inside a folder being read.
    public func refuse(_ path: String?, option: String) throws(TensorFormatError) {
        guard let path, path != "-" else { return }
        if let st = Sys.fileStatus(path: path) {
            if st.st_mode & S_IFMT == S_IFREG, let input = files[FileIdentity(st)] {
                throw clash(path, option, input, "is")
            }
            if st.st_mode & S_IFMT == S_IFDIR, let real = Sys.realPath(path) {
                for (folder, input) in folders + shardFolders where Self.isInside(real, folder) {
                    throw clash(path, option, input, "is inside")
                }
                return
            }
        }
        let parent = Self.parent(of: path)
        guard let real = Sys.realPath(parent.isEmpty ? "." : parent) else { return }
        for (folder, input) in folders where Self.isInside(real, folder) {
            throw clash(path, option, input, "is inside")
        }
    }

    private func clash(_ path: String, _ option: String, _ input: Input, _ relation: String) -> TensorFormatError {
        TensorFormatError(.sameFile, "\(option) \(relation) the input \(input.role) (\(input.path)); choose another path", file: path)
    }

    /// The folder that holds `path` ("" for a bare name, "/" for a name at the root), trailing slashes
    /// ignored. Computed by hand: swift-corelibs-foundation's `deletingLastPathComponent` traps on a
    /// one-character name with a trailing slash (`prune --depth base MODEL k/`).
    static func parent(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/") else { return "" }
        return slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
    }

    /// The last component of `path`, trailing slashes ignored (`deletingLastPathComponent`'s partner
    /// `lastPathComponent` shares its trap).
    static func name(of path: String) -> String {
        var trimmed = Substring(path)
        while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        guard let slash = trimmed.lastIndex(of: "/"), trimmed.count > 1 else { return String(trimmed) }
        return String(trimmed[trimmed.index(after: slash)...])
    }

    private static func isInside(_ path: String, _ folder: String) -> Bool {
        path == folder || path.hasPrefix(folder.hasSuffix("/") ? folder : folder + "/")
    }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var current = InputSet()

    /// The inputs declared by the running command (empty when none were declared).
    public static var declared: InputSet {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    /// Declares the running command's inputs, and refuses now, before any work, every output that
    /// clashes with one: `outputs` pairs a path (nil: not given) with the option that names it.
    public static func declare(inputs: [(path: String?, role: String)], outputs: [(path: String?, option: String)]) throws(TensorFormatError) {
        var set = InputSet()
        for input in inputs { set.add(input.path, role: input.role) }
        for output in outputs { try set.refuse(output.path, option: output.option) }
        try refuseShared(outputs)
        lock.lock(); defer { lock.unlock() }
        current = set
    }
}

extension InputSet {
    /// Refuses two outputs that name one file (`--state` equal to OUT, `--log` equal to either, also
    /// through another spelling, a symlink or a hard link): each would be written over the other.
    /// Standard output and existing devices (`/dev/null`) are not files one output can destroy.
    static func refuseShared(_ outputs: [(path: String?, option: String)]) throws(TensorFormatError) {
        var seen: [String: String] = [:]
        for case let (path?, option) in outputs where path != "-" {
            guard let key = fileKey(path) else { continue }
            if let other = seen[key] {
                throw TensorFormatError(.outputShared, "\(option) and \(other) name one file; each output needs its own path", file: path)
            }
            seen[key] = option
        }
    }

    /// What identifies the file `path` names: its device and inode when it exists, else its resolved
    /// folder and name; nil for an existing device, FIFO or folder.
    private static func fileKey(_ path: String) -> String? {
        if let st = Sys.fileStatus(path: path) {
            guard st.st_mode & S_IFMT == S_IFREG else { return nil }
            return "inode \(st.st_dev) \(st.st_ino)"
        }
        let parent = Self.parent(of: path)
        let folder = Sys.realPath(parent.isEmpty ? "." : parent) ?? parent
        return "path " + folder + "/" + Self.name(of: path)
    }
}

extension FileIdentity {
    init(_ st: stat) {
        self.init(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
    }
}

extension ErrorCode {
    /// Two outputs of one command name the same file (formats/cli.md).
    public static let outputShared = ErrorCode(rawValue: "output-shared")
}
