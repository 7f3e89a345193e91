//! Large generated runbooks of a known shape, for the planning tests and the engine
//! benchmark (`bench/engine.rs`): a chain, a fan-out, a fan-in, a fan-out-and-in and a
//! diamond lattice of `n` steps. Nothing here runs anything; it only writes TOML text.

use std::fmt::Write as _;

/// How the `needs` of a generated runbook connect its steps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    /// `s1` needs `s0`, `s2` needs `s1`, … (the longest possible path).
    Chain,
    /// Every other step needs `s0`.
    FanOut,
    /// The last step needs every other step.
    FanIn,
    /// `s0` → every middle step → the last step.
    FanOutIn,
    /// Layers of about √n steps; each step needs two neighbours of the layer before.
    Lattice,
}

impl Shape {
    pub const ALL: [Shape; 5] = [
        Shape::Chain,
        Shape::FanOut,
        Shape::FanIn,
        Shape::FanOutIn,
        Shape::Lattice,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Shape::Chain => "chain",
            Shape::FanOut => "fan-out",
            Shape::FanIn => "fan-in",
            Shape::FanOutIn => "fan-out-in",
            Shape::Lattice => "lattice",
        }
    }

    /// The needs of step `i` of `n`.
    pub fn needs(self, i: usize, n: usize) -> Vec<usize> {
        match self {
            Shape::Chain => i.checked_sub(1).into_iter().collect(),
            Shape::FanOut => {
                if i == 0 {
                    vec![]
                } else {
                    vec![0]
                }
            }
            Shape::FanIn => {
                if i + 1 == n && n > 1 {
                    (0..i).collect()
                } else {
                    vec![]
                }
            }
            Shape::FanOutIn => {
                if i == 0 {
                    vec![]
                } else if i + 1 == n && i > 1 {
                    (1..i).collect()
                } else {
                    vec![0]
                }
            }
            Shape::Lattice => {
                let width = lattice_width(n);
                let (layer, pos) = (i / width, i % width);
                if layer == 0 {
                    return vec![];
                }
                let before = (layer - 1) * width;
                let mut needs = vec![before + pos];
                let other = before + (pos + 1) % width;
                if other != before + pos {
                    needs.push(other);
                }
                needs
            }
        }
    }
}

fn lattice_width(n: usize) -> usize {
    ((n as f64).sqrt().ceil() as usize).max(1)
}

/// What each generated step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// `util.wait` for `0s`: a step that finishes at once (for runs).
    NoOp,
    /// `util.shell` whose script refers to an output of every step it needs, so
    /// planning checks one upstream reference per edge (for plans; never run).
    ReferencesNeeds,
}

/// The TOML text of a runbook of `n` steps (`s0` … `s{n-1}`) of the given shape.
pub fn runbook(shape: Shape, n: usize, body: Body) -> String {
    let mut out = String::with_capacity(n * 96);
    let _ = writeln!(out, "name = \"{}-{n}\"\nconcurrency = 16", shape.name());
    for i in 0..n {
        let needs = shape.needs(i, n);
        let _ = write!(out, "\n[[step]]\nid = \"s{i}\"\n");
        match body {
            Body::NoOp => out.push_str("uses = \"util.wait\"\nwith = { duration = \"0s\" }\n"),
            Body::ReferencesNeeds => {
                let refs: Vec<String> = needs
                    .iter()
                    .map(|j| format!("${{{{ steps.s{j}.outputs.x }}}}"))
                    .collect();
                let _ = writeln!(
                    out,
                    "uses = \"util.shell\"\nwith = {{ run = \"true {}\" }}",
                    refs.join(" ")
                );
            }
        }
        if !needs.is_empty() {
            let list: Vec<String> = needs.iter().map(|j| format!("\"s{j}\"")).collect();
            let _ = writeln!(out, "needs = [{}]", list.join(", "));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_has_n_steps_and_only_backward_needs() {
        for shape in Shape::ALL {
            for n in [1, 2, 3, 10, 101] {
                for i in 0..n {
                    for j in shape.needs(i, n) {
                        assert!(j < i, "{shape:?} n={n}: s{i} needs s{j}");
                    }
                }
                let text = runbook(shape, n, Body::NoOp);
                assert_eq!(text.matches("[[step]]").count(), n, "{shape:?} n={n}");
            }
        }
    }
}
