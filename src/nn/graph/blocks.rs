//! The builders of the composite blocks whose ops have their own kernel
//! files: self-attention ([`super::super::attention`]) and dropout
//! ([`super::super::dropout`]). The kernels know nothing of the graph; the
//! graph calls them from its forward and backward passes.

use super::{Graph, Init, InitList, Node, Op};

impl Graph {
    /// Append `out = x + Conv1(Attention(Conv1(GN(x))))`: tensors
    /// `name.norm`, `name.qkv` (`[3C, C, 1, 1]`), `name.proj`
    /// (`[C, C, 1, 1]`, zero-initialised). Returns the output node.
    pub fn attention_block(
        &mut self,
        ini: &mut InitList,
        x: usize,
        groups: usize,
        heads: usize,
        name: &str,
    ) -> usize {
        let Node { h, w, c, .. } = self.nodes[x].clone();
        assert!(c.is_multiple_of(heads), "heads must divide channels");
        let n = self.group_norm(ini, x, groups, &format!("{name}.norm"));
        let qkv = self.conv(ini, n, 3 * c, 1, 1, &format!("{name}.qkv"));
        self.nodes.push(Node {
            op: Op::Attention { src: qkv, heads },
            h,
            w,
            c,
        });
        let a = self.nodes.len() - 1;
        let o = self.conv(ini, a, c, 1, 1, &format!("{name}.proj"));
        // The projection's weight and bias are the last two tensors added.
        for entry in ini.iter_mut().rev().take(2) {
            entry.2 = Init::Const(0.0);
        }
        self.add(x, o)
    }

    /// Append a dropout node at rate `p` reading `src` (layer number: the
    /// dropout nodes already in the graph). Returns the node.
    pub fn dropout(&mut self, src: usize, p: f64) -> usize {
        let layer = self
            .nodes
            .iter()
            .filter(|n| matches!(n.op, Op::Dropout { .. }))
            .count();
        let n = self.nodes[src].clone();
        self.nodes.push(Node {
            op: Op::Dropout { src, p, layer },
            ..n
        });
        self.nodes.len() - 1
    }
}
