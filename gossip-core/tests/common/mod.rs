//! An in-memory network of `Node<u32>`s for the security tests: node `i` is named `n{i}` and
//! lives at address `i + 1`; every node but the first joins through it; time moves in 10 ms
//! steps and every datagram is delivered at once (through a tap that may alter or drop it).

#![allow(dead_code)] // each test file uses a part

use std::time::{Duration, Instant};

use gossip_core::wire::{codec, Message};
use gossip_core::{Config, Event, HandleError, Identity, Node, Transmit};

pub struct Net {
    pub nodes: Vec<Node<u32>>,
    pub now: Instant,
}

impl Net {
    pub fn new(configs: Vec<Config>) -> Self {
        let now = Instant::now();
        let nodes: Vec<Node<u32>> = configs
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let id = Identity { name: format!("n{i}"), addr: i as u32 + 1, generation: 1 };
                Node::new(c, id, i as u64 + 11, now).expect("node")
            })
            .collect();
        let mut net = Net { nodes, now };
        let seeds = vec![1u32];
        for i in 1..net.nodes.len() {
            net.nodes[i].join(now, seeds.clone());
        }
        net
    }

    /// Runs for `d` in 10 ms steps, delivering everything (through `tap`, which may alter or
    /// drop a datagram).
    pub fn run(&mut self, d: Duration, tap: &mut impl FnMut(usize, &mut Transmit<u32>) -> bool) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            for n in &mut self.nodes {
                n.poll_timer(now);
            }
            let mut out = Vec::new();
            for (i, n) in self.nodes.iter_mut().enumerate() {
                while let Some(t) = n.poll_transmit() {
                    out.push((i, t));
                }
            }
            for (from, mut t) in out {
                if !tap(from, &mut t) {
                    continue;
                }
                let to = t.destination as usize - 1;
                if let Some(n) = self.nodes.get_mut(to) {
                    let _ = n.handle_message(now, from as u32 + 1, &t.contents);
                }
            }
        }
    }

    pub fn converged(&self) -> bool {
        self.nodes.iter().all(|n| n.live_count() == self.nodes.len() - 1)
    }

    pub fn downs(&mut self) -> usize {
        self.nodes
            .iter_mut()
            .map(|n| std::iter::from_fn(|| n.poll_event()).filter(|e| matches!(e, Event::MemberDown(_))).count())
            .sum()
    }
}

/// A tap that delivers everything unchanged.
pub fn pass(_: usize, _: &mut Transmit<u32>) -> bool {
    true
}

/// Delivers `messages` to node `to` as a datagram from node `from` (named `n{from}`, from its
/// address), as a rogue member would send them.
pub fn inject(net: &mut Net, from: usize, to: usize, messages: &[Message<u32>]) -> Result<(), HandleError> {
    inject_as(net, &format!("n{from}"), from as u32 + 1, to, messages)
}

/// Like [`inject`], naming any sender at any source address (a forged source).
pub fn inject_as(
    net: &mut Net,
    name: &str,
    addr: u32,
    to: usize,
    messages: &[Message<u32>],
) -> Result<(), HandleError> {
    let label = net.nodes[to].config().cluster_label.clone();
    let bytes = codec::encode_datagram(&label, name, messages);
    let now = net.now;
    net.nodes[to].handle_message(now, addr, &bytes)
}
