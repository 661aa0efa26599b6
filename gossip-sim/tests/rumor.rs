//! The rumor-mongering models (`gossip sim rumor`): determinism, the orderings the theory
//! predicts, the deterministic model's residues, and option checks.

use gossip_sim::rumor::{ode_residue, rumor, run_once, Mode, RumorOptions, RumorResult, Variant};

fn opts(nodes: usize, runs: usize, mode: Mode, variant: Variant, k: u32) -> RumorOptions {
    RumorOptions { nodes, runs, seed: 7, mode, variant, k, ..RumorOptions::default() }
}

fn run(o: &RumorOptions) -> RumorResult {
    rumor(o, |_| {}).expect("valid options")
}

#[test]
fn same_seed_same_run_other_seed_other_run() {
    for mode in [Mode::Push, Mode::Pull, Mode::PushPull] {
        let o = RumorOptions { fanout: 2, ..opts(2000, 1, mode, Variant::FeedbackCoin, 3) };
        let a = run_once(&o, 11);
        assert_eq!(a, run_once(&o, 11), "{mode:?}");
        assert_ne!(a, run_once(&o, 12), "{mode:?}");
    }
    let o = opts(2000, 4, Mode::PushPull, Variant::FeedbackCounter, 2);
    let (a, b) = (run(&o), run(&o));
    assert_eq!(
        (a.residue_mean, a.traffic_mean, a.t_ave_mean, a.t_last_mean, a.rounds_mean, a.curve.clone()),
        (b.residue_mean, b.traffic_mean, b.t_ave_mean, b.t_last_mean, b.rounds_mean, b.curve.clone())
    );
    let c = run(&RumorOptions { seed: 8, ..o });
    assert_ne!((a.traffic_mean, a.curve), (c.traffic_mean, c.curve));
}

#[test]
fn progress_counts_every_run() {
    let mut seen = Vec::new();
    run_progress(&opts(500, 3, Mode::Push, Variant::Forever, 1), &mut seen);
    assert_eq!(seen, [1, 2, 3]);
}

fn run_progress(o: &RumorOptions, seen: &mut Vec<usize>) {
    rumor(o, |d| seen.push(d)).expect("valid options");
}

#[test]
fn forever_informs_everyone_in_every_mode() {
    for mode in [Mode::Push, Mode::Pull, Mode::PushPull] {
        let r = run(&opts(2000, 5, mode, Variant::Forever, 1));
        assert_eq!(r.residue_mean, 0.0, "{mode:?}");
        assert_eq!(r.runs_all_informed, 5, "{mode:?}");
        assert_eq!(r.runs_capped, 0, "{mode:?}");
        // Everyone informed in the run's last round, which is when the run stops.
        assert_eq!(r.rounds_all_mean, r.rounds_mean, "{mode:?}");
        assert_eq!(r.rounds_all_mean, r.t_last_mean, "{mode:?}");
        assert_eq!(r.curve.first().map(|p| p.1), Some(1.0 / 2000.0));
        assert_eq!(r.curve.last().map(|p| p.1), Some(1.0));
        assert!(r.curve.windows(2).all(|w| w[0].1 <= w[1].1), "{mode:?}: the curve never falls");
    }
}

#[test]
fn push_pull_never_needs_more_rounds_than_push_on_the_same_seeds() {
    for nodes in [200, 2000] {
        let push = run(&opts(nodes, 20, Mode::Push, Variant::Forever, 1));
        let both = run(&opts(nodes, 20, Mode::PushPull, Variant::Forever, 1));
        assert!(
            both.rounds_all_mean <= push.rounds_all_mean,
            "{nodes} nodes: push-pull {} rounds, push {}",
            both.rounds_all_mean,
            push.rounds_all_mean
        );
        assert!(both.rounds_all_max <= push.rounds_all_max);
    }
}

#[test]
fn rounds_until_all_informed_are_near_theory() {
    // Push: log2 N + ln N (Pittel); push-pull: log3 N plus a few (Karp et al.).
    let push = run(&opts(2000, 20, Mode::Push, Variant::Forever, 1));
    assert!((push.rounds_all_mean - push.rounds_all_theory).abs() < 3.0, "{push:?}");
    let both = run(&opts(2000, 20, Mode::PushPull, Variant::Forever, 1));
    assert!(both.rounds_all_mean > both.rounds_all_theory && both.rounds_all_mean < both.rounds_all_theory + 5.0);
}

#[test]
fn more_partners_spread_faster() {
    let one = run(&opts(2000, 10, Mode::Push, Variant::Forever, 1));
    let three = run(&RumorOptions { fanout: 3, ..opts(2000, 10, Mode::Push, Variant::Forever, 1) });
    assert!(three.rounds_all_mean < one.rounds_all_mean);
    assert!(three.rounds_all_theory.is_nan(), "theory given for fanout 1 only");
}

#[test]
fn residue_falls_and_traffic_grows_as_k_grows() {
    let results: Vec<RumorResult> =
        (1..=4).map(|k| run(&opts(2000, 20, Mode::Push, Variant::FeedbackCounter, k))).collect();
    for w in results.windows(2) {
        assert!(
            w[1].residue_mean < w[0].residue_mean,
            "k={:?}: {} !< {}",
            w[1].k,
            w[1].residue_mean,
            w[0].residue_mean
        );
        assert!(w[1].traffic_mean > w[0].traffic_mean);
    }
    // Demers: in push, s = e^(-m) whatever the variant.
    for r in &results {
        assert!(
            (r.traffic_mean + r.residue_mean.ln()).abs() < 0.2,
            "k={:?}: m {} s {}",
            r.k,
            r.traffic_mean,
            r.residue_mean
        );
    }
    assert!(results[0].residue_mean > 0.1 && results[0].residue_mean < 0.25, "k=1: {}", results[0].residue_mean);
}

#[test]
fn blind_coin_push_follows_the_ode_and_feedback_coin_stays_near_it() {
    for k in [2, 3, 4] {
        let r = run(&opts(2000, 40, Mode::Push, Variant::BlindCoin, k));
        let ode = ode_residue(Variant::BlindCoin, k);
        assert_eq!(r.residue_ode, ode);
        assert!((r.residue_mean - ode).abs() < 0.15 * ode + 0.002, "blind coin k={k}: {} vs {ode}", r.residue_mean);
        assert!(
            (r.traffic_mean - r.traffic_ode).abs() < 0.15,
            "blind coin k={k}: {} vs {}",
            r.traffic_mean,
            r.traffic_ode
        );
    }
    for k in [1, 2, 3] {
        // Synchronous rounds see who knew when the round began, so fewer contacts look
        // unnecessary than in the ODE's continuous time: the residue is lower, within a third.
        let r = run(&opts(2000, 40, Mode::Push, Variant::FeedbackCoin, k));
        let ode = ode_residue(Variant::FeedbackCoin, k);
        assert!(
            r.residue_mean < ode && r.residue_mean > 0.66 * ode,
            "feedback coin k={k}: {} vs {ode}",
            r.residue_mean
        );
    }
}

#[test]
fn ode_residues() {
    let close = |a: f64, b: f64| (a - b).abs() < 5e-4;
    // s = e^(-(k+1)(1-s)), Demers' feedback coin.
    assert!(close(ode_residue(Variant::FeedbackCoin, 1), 0.2032));
    assert!(close(ode_residue(Variant::FeedbackCoin, 2), 0.0595));
    assert!(close(ode_residue(Variant::FeedbackCoin, 4), 0.0070));
    // s = e^(-k(1-s)), the blind coin: k = 1 never takes off.
    assert_eq!(ode_residue(Variant::BlindCoin, 1), 1.0);
    assert!(close(ode_residue(Variant::BlindCoin, 2), 0.2032));
    assert_eq!(ode_residue(Variant::Forever, 5), 0.0);
    for k in 1..20 {
        let s = ode_residue(Variant::FeedbackCoin, k);
        assert!((s - (-(f64::from(k) + 1.0) * (1.0 - s)).exp()).abs() < 1e-9);
    }
}

#[test]
fn counter_reset_loses_interest_later() {
    let plain = run(&opts(2000, 20, Mode::Push, Variant::FeedbackCounter, 2));
    let reset = run(&RumorOptions { counter_reset: true, ..opts(2000, 20, Mode::Push, Variant::FeedbackCounter, 2) });
    assert!(reset.residue_mean < plain.residue_mean);
    assert!(reset.traffic_mean > plain.traffic_mean);
    // k = 1: the first unnecessary message ends it either way.
    let a = run_once(&opts(2000, 1, Mode::Push, Variant::FeedbackCounter, 1), 3);
    let b =
        run_once(&RumorOptions { counter_reset: true, ..opts(2000, 1, Mode::Push, Variant::FeedbackCounter, 1) }, 3);
    assert_eq!(a, b);
}

#[test]
fn traffic_counts_messages_that_carry_the_rumor() {
    // Blind counter, push: every informed node sends exactly k messages, then stops.
    let o = opts(2000, 1, Mode::Push, Variant::BlindCounter, 3);
    let r = run_once(&o, 5);
    assert_eq!(r.messages, 3 * (2000 - r.susceptible) as u64);
    assert_eq!(r.requests, 0);
    // Forever, push: every informed node sends one message per round until all are informed.
    let r = run_once(&opts(2000, 1, Mode::Push, Variant::Forever, 1), 5);
    let expected: u64 = r.informed[..r.informed.len() - 1].iter().sum();
    assert_eq!(r.messages, expected);
    // Pull: the nodes that do not know yet ask once per round.
    let r = run_once(&opts(2000, 1, Mode::Pull, Variant::Forever, 1), 5);
    let asked: u64 = r.informed[..r.informed.len() - 1].iter().map(|i| 2000 - i).sum();
    assert_eq!(r.requests, asked);
}

#[test]
fn pull_leaves_less_behind_than_push() {
    let push = run(&opts(2000, 20, Mode::Push, Variant::FeedbackCounter, 1));
    let pull = run(&opts(2000, 20, Mode::Pull, Variant::FeedbackCounter, 1));
    assert!(pull.residue_mean < push.residue_mean / 2.0, "pull {} push {}", pull.residue_mean, push.residue_mean);
}

#[test]
fn loss_slows_forever_but_everyone_hears() {
    let clean = run(&opts(1000, 10, Mode::PushPull, Variant::Forever, 1));
    let lossy = run(&RumorOptions { loss: 0.5, ..opts(1000, 10, Mode::PushPull, Variant::Forever, 1) });
    assert_eq!(lossy.runs_all_informed, 10);
    assert!(lossy.rounds_all_mean > clean.rounds_all_mean);
    assert!(lossy.residue_ode.is_nan(), "the ODE is for push without loss");
}

#[test]
fn the_round_cap_stops_a_run() {
    let r = run(&RumorOptions { max_rounds: 3, ..opts(2000, 2, Mode::Push, Variant::Forever, 1) });
    assert_eq!(r.runs_capped, 2);
    assert_eq!(r.runs_all_informed, 0);
    assert!(r.rounds_all_mean.is_nan());
    assert_eq!(r.rounds_mean, 3.0);
    assert!(r.residue_mean > 0.99);
}

#[test]
fn bad_options_are_errors() {
    let good = opts(100, 1, Mode::Push, Variant::FeedbackCounter, 2);
    let bad = [
        RumorOptions { nodes: 1, ..good.clone() },
        RumorOptions { runs: 0, ..good.clone() },
        RumorOptions { fanout: 0, ..good.clone() },
        RumorOptions { fanout: 100, ..good.clone() },
        RumorOptions { fanout: 65, nodes: 1000, ..good.clone() },
        RumorOptions { k: 0, ..good.clone() },
        RumorOptions { k: 70_000, ..good.clone() },
        RumorOptions { loss: 1.0, ..good.clone() },
        RumorOptions { loss: f64::NAN, ..good.clone() },
        RumorOptions { max_rounds: 0, ..good.clone() },
        RumorOptions { counter_reset: true, variant: Variant::BlindCoin, ..good.clone() },
    ];
    for o in &bad {
        let e = rumor(o, |_| {}).expect_err("invalid");
        assert!(e.to_string().starts_with("--"), "{e}");
    }
    assert!(rumor(&RumorOptions { fanout: 64, ..good.clone() }, |_| {}).is_ok());
    assert!(rumor(&RumorOptions { fanout: 9, nodes: 10, ..good.clone() }, |_| {}).is_ok());
    assert!(rumor(&RumorOptions { fanout: 10, nodes: 10, ..good.clone() }, |_| {}).is_err());
    assert!(rumor(&RumorOptions { k: 0, variant: Variant::Forever, ..good }, |_| {}).is_ok(), "forever ignores k");
    assert!(rumor(&opts(2, 1, Mode::PushPull, Variant::BlindCoin, 1), |_| {}).is_ok());
}
