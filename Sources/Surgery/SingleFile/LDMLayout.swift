/// The block rules of each component, made from the structure its names depend on (how many blocks,
/// layers per block, which blocks have attention). Both directions use the same rules.
public enum LDMLayout {
    /// What a UNet's names depend on.
    public struct UNetStructure: Sendable, Equatable {
        public var blocks: Int
        public var layersPerBlock: Int
        public var downAttention: [Bool]
        public var upAttention: [Bool]
        public var midAttention: Bool
        public var addition: Bool
    }

    /// What a VAE's names depend on (the decoder has one more resnet per block than the encoder).
    public struct VAEStructure: Sendable, Equatable {
        public var blocks: Int
        public var layersPerBlock: Int
    }

    public static func unet(_ s: UNetStructure) -> [LDMBlockRule] {
        var rules = LDMKeyTable.unetTop.map { LDMBlockRule($0.ldm, $0.diffusers, []) }
        if s.addition { rules += LDMKeyTable.unetAddition.map { LDMBlockRule($0.ldm, $0.diffusers, []) } }
        let stride = s.layersPerBlock + 1
        for b in 0..<s.blocks {
            for j in 0..<s.layersPerBlock {
                let i = 1 + b * stride + j
                rules.append(LDMBlockRule("input_blocks.\(i).0.", "down_blocks.\(b).resnets.\(j).", LDMKeyTable.unetResnet))
                if s.downAttention[b] {
                    rules.append(LDMBlockRule("input_blocks.\(i).1.", "down_blocks.\(b).attentions.\(j).", LDMKeyTable.unetAttention))
                }
            }
            if b < s.blocks - 1 {
                rules.append(LDMBlockRule("input_blocks.\((b + 1) * stride).0.op.", "down_blocks.\(b).downsamplers.0.conv.", LDMKeyTable.sampler))
            }
        }
        rules.append(LDMBlockRule("middle_block.0.", "mid_block.resnets.0.", LDMKeyTable.unetResnet))
        if s.midAttention {
            rules.append(LDMBlockRule("middle_block.1.", "mid_block.attentions.0.", LDMKeyTable.unetAttention))
            rules.append(LDMBlockRule("middle_block.2.", "mid_block.resnets.1.", LDMKeyTable.unetResnet))
        } else {
            rules.append(LDMBlockRule("middle_block.1.", "mid_block.resnets.1.", LDMKeyTable.unetResnet))
        }
        for b in 0..<s.blocks {
            for j in 0...s.layersPerBlock {
                let i = b * stride + j
                rules.append(LDMBlockRule("output_blocks.\(i).0.", "up_blocks.\(b).resnets.\(j).", LDMKeyTable.unetResnet))
                if s.upAttention[b] {
                    rules.append(LDMBlockRule("output_blocks.\(i).1.", "up_blocks.\(b).attentions.\(j).", LDMKeyTable.unetAttention))
                }
            }
            if b < s.blocks - 1 {
                let i = b * stride + s.layersPerBlock
                let slot = s.upAttention[b] ? 2 : 1
                rules.append(LDMBlockRule("output_blocks.\(i).\(slot).conv.", "up_blocks.\(b).upsamplers.0.conv.", LDMKeyTable.sampler))
            }
        }
        return rules
    }

    public static func vae(_ s: VAEStructure) -> [LDMBlockRule] {
        var rules = LDMKeyTable.vaeTop.map { LDMBlockRule($0.ldm, $0.diffusers, []) }
        for i in 0..<s.blocks {
            for j in 0..<s.layersPerBlock {
                rules.append(LDMBlockRule("encoder.down.\(i).block.\(j).", "encoder.down_blocks.\(i).resnets.\(j).", LDMKeyTable.vaeResnet))
            }
            if i < s.blocks - 1 {
                rules.append(LDMBlockRule("encoder.down.\(i).downsample.conv.", "encoder.down_blocks.\(i).downsamplers.0.conv.", LDMKeyTable.sampler))
            }
        }
        for part in ["encoder", "decoder"] {
            rules.append(LDMBlockRule("\(part).mid.block_1.", "\(part).mid_block.resnets.0.", LDMKeyTable.vaeResnet))
            rules.append(LDMBlockRule("\(part).mid.attn_1.", "\(part).mid_block.attentions.0.", LDMKeyTable.vaeAttention))
            rules.append(LDMBlockRule("\(part).mid.block_2.", "\(part).mid_block.resnets.1.", LDMKeyTable.vaeResnet))
        }
        // The decoder's levels count up from the output in LDM and down from the latent in diffusers.
        for i in 0..<s.blocks {
            let level = s.blocks - 1 - i
            for j in 0...s.layersPerBlock {
                rules.append(LDMBlockRule("decoder.up.\(level).block.\(j).", "decoder.up_blocks.\(i).resnets.\(j).", LDMKeyTable.vaeResnet))
            }
            if level > 0 {
                rules.append(LDMBlockRule("decoder.up.\(level).upsample.conv.", "decoder.up_blocks.\(i).upsamplers.0.conv.", LDMKeyTable.sampler))
            }
        }
        return rules
    }

    /// transformers' CLIP names under an LDM prefix (SD1, SDXL's first encoder): one rule, no renames.
    /// CLIPTextModel's own names have no `text_model.` (transformers 5.6 flattened it; older folders
    /// with the prefix are read too), CLIPTextModelWithProjection's keep it.
    public static func huggingFaceCLIP(prefix: String) -> [LDMBlockRule] {
        [LDMBlockRule(prefix, "", [])]
    }

    /// OpenCLIP under `prefix` as transformers CLIP names under `base` (`""` for CLIPTextModel,
    /// `text_model.` for CLIPTextModelWithProjection, whose projection is then mapped too).
    public static func openCLIP(prefix: String, base: String, layers: Int, projection: Bool) -> [LDMBlockRule] {
        var rules = LDMKeyTable.openCLIPTop.map { LDMBlockRule(prefix + $0.ldm, base + $0.diffusers, []) }
        for n in 0..<layers {
            rules.append(LDMBlockRule(prefix + "transformer.resblocks.\(n).", base + "encoder.layers.\(n).", LDMKeyTable.openCLIPLayer))
        }
        if projection {
            let row = LDMKeyTable.openCLIPProjection
            rules.append(LDMBlockRule(prefix + row.ldm, "", [LDMNameRow("", row.diffusers, row.transform)]))
        }
        return rules
    }
}

/// A name found by the rules, with how its bytes move.
public struct LDMMappedName: Sendable, Equatable {
    public var name: String
    public var transform: LDMTransform
    /// For `.fusedQKV` seen from diffusers: 0, 1, 2 for q, k, v.
    public var part: Int = 0
}

extension Array where Element == LDMBlockRule {
    /// The diffusers name of an LDM name (prefix of the component already removed), nil when no rule matches.
    public func diffusersName(ofLDM name: String) -> LDMMappedName? {
        guard let rule = longest(name, \.ldm) else { return nil }
        let rest = String(name.dropFirst(rule.ldm.count))
        for row in rule.rows where rest.hasPrefix(row.ldm) && (!row.ldm.isEmpty || rest.isEmpty) {
            return LDMMappedName(name: rule.diffusers + row.diffusers + rest.dropFirst(row.ldm.count), transform: row.transform)
        }
        return LDMMappedName(name: rule.diffusers + rest, transform: .copy)
    }

    /// The LDM name of a diffusers name, nil when no rule matches.
    public func ldmName(ofDiffusers name: String) -> LDMMappedName? {
        // A rule whose diffusers side is empty only matches through its rows (the projection).
        for rule in self where rule.diffusers.isEmpty && !rule.rows.isEmpty {
            if let row = rule.rows.first, row.diffusers == name { return LDMMappedName(name: rule.ldm, transform: row.transform) }
        }
        guard let rule = longest(name, \.diffusers, skipEmptyWithRows: true) else { return nil }
        let rest = String(name.dropFirst(rule.diffusers.count))
        for row in rule.rows {
            if row.transform == .fusedQKV {
                for (part, letter) in ["q", "k", "v"].enumerated() where rest == row.diffusers.replacingOccurrences(of: "{}", with: letter) {
                    return LDMMappedName(name: rule.ldm + row.ldm, transform: .fusedQKV, part: part)
                }
            } else if !row.diffusers.isEmpty, rest.hasPrefix(row.diffusers) {
                return LDMMappedName(name: rule.ldm + row.ldm + rest.dropFirst(row.diffusers.count), transform: row.transform)
            }
        }
        return LDMMappedName(name: rule.ldm + rest, transform: .copy)
    }

    private func longest(_ name: String, _ side: KeyPath<LDMBlockRule, String>, skipEmptyWithRows: Bool = false) -> LDMBlockRule? {
        var best: LDMBlockRule?
        for rule in self where name.hasPrefix(rule[keyPath: side]) {
            if skipEmptyWithRows && rule[keyPath: side].isEmpty && !rule.rows.isEmpty { continue }
            if best == nil || rule[keyPath: side].count > best![keyPath: side].count { best = rule }
        }
        return best
    }
}
