import ArgumentParser

/// `dmsurgery help WORD…` names subcommands; the argument parser shows the root help with status 0 for a
/// word that names none, which would hide a typo in a script. This finds that word.
enum HelpTopic {
    /// The first word after `help` that is not a subcommand of the one before it, or nil.
    static func unknownWord(in arguments: [String], root: ParsableCommand.Type) -> String? {
        guard arguments.first == "help" else { return nil }
        var command = root
        for word in arguments.dropFirst() where !word.hasPrefix("-") {
            guard let next = command.configuration.subcommands.first(where: { $0._commandName == word }) else { return word }
            command = next
        }
        return nil
    }
}
