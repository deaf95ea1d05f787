//! DOT export of expression graphs, fused stages and tasks.

use petgraph::dot::{Config, Dot};
use petgraph::graph::DiGraph;

use crate::graph::Graph;
use crate::op::Meta;
use crate::plan::{ChunkKey, Plan, StageId, StageKind};
use crate::shape::grid_index;

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn meta_line(m: &Meta) -> String {
    format!(
        "{} {:?} chunks {:?} ({} chunks)",
        m.dtype,
        m.shape,
        m.chunks.max_chunk(),
        m.chunks.count()
    )
}

fn render(g: &DiGraph<String, ()>, shape: &str) -> String {
    let node_attr = |_: &DiGraph<String, ()>, (_, label): (petgraph::graph::NodeIndex, &String)| {
        format!("label=\"{}\" shape={shape}", escape(label))
    };
    format!(
        "{:?}",
        Dot::with_attr_getters(
            g,
            &[Config::NodeNoLabel, Config::EdgeNoLabel],
            &|_, _| String::new(),
            &node_attr
        )
    )
}

/// The expression graph: one node per operation, labelled with op, shape, dtype and chunks.
pub fn graph_dot(graph: &Graph) -> String {
    let mut g = DiGraph::<String, ()>::new();
    let idx: Vec<_> = graph
        .nodes
        .iter()
        .map(|n| g.add_node(format!("{}\n{}", n.op.label(), meta_line(&n.meta))))
        .collect();
    for (i, n) in graph.nodes.iter().enumerate() {
        for inp in &n.inputs {
            g.add_edge(idx[inp.index()], idx[i], ());
        }
    }
    render(&g, "box")
}

/// The fused stages: each lists the operations it contains and its task count.
pub fn plan_dot(plan: &Plan) -> String {
    let mut g = DiGraph::<String, ()>::new();
    let idx: Vec<_> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut label = format!(
                "stage {i}: {} × {} tasks\n{}\nops: {}",
                s.kind_name(),
                s.task_count(),
                meta_line(&s.meta),
                s.label
            );
            if let StageKind::Map(exe) | StageKind::Partial { exe, .. } = &s.kind {
                label.push_str(&format!(
                    "\nkernel: {} instructions",
                    exe.program.instrs.len()
                ));
            }
            g.add_node(label)
        })
        .collect();
    for (i, s) in plan.stages.iter().enumerate() {
        for inp in &s.inputs {
            g.add_edge(idx[inp.index()], idx[i], ());
        }
    }
    render(&g, "box")
}

/// Every task (up to `max_tasks`, then the rest is summarized) and its inputs.
pub fn task_dot(plan: &Plan, max_tasks: usize) -> String {
    let mut g = DiGraph::<String, ()>::new();
    let mut ids = std::collections::HashMap::new();
    let mut shown = 0;
    'outer: for (s, stage) in plan.stages.iter().enumerate() {
        let grid = stage.meta.chunks.grid();
        for c in 0..stage.task_count() {
            if shown == max_tasks {
                break 'outer;
            }
            let key = ChunkKey {
                stage: StageId(s as u32),
                chunk: c as u32,
            };
            let label = format!("{} {s}\n{:?}", stage.kind_name(), grid_index(c, &grid));
            let n = g.add_node(label);
            ids.insert(key, n);
            for inp in plan.task_inputs(key) {
                if let Some(&src) = ids.get(&inp) {
                    g.add_edge(src, n, ());
                }
            }
            shown += 1;
        }
    }
    if shown < plan.task_count() {
        g.add_node(format!("… {} more tasks", plan.task_count() - shown));
    }
    render(&g, "ellipse")
}
