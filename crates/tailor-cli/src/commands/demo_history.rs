//! The demo shop's simulated serving history, so its A/B test and layout bandit have data
//! from the first start: the generated home-page lists of the last two weeks go through the
//! real experiment assignment (and become exposures tagged with their variant) and the real
//! bandit (decisions, rewarded by the lists' click-throughs).
//!
//! The generated behaviour is the same for every variant and arm; the simulation gives the
//! treatment a known effect by dropping a share of the other side's click-throughs (their
//! events stay, as organic ones): the control loses 15% of its attributed click-throughs,
//! the bandit's arms keep 80% (carousel), 100% (grid) and 60% (list) of theirs' rewards.

use anyhow::Context as _;
use std::collections::BTreeMap;

use anyhow::Result;
use tailor_core::rng::Rng;
use tailor_core::{Event, EventKind, Timestamp};
use tailor_experiment::report::Exposure;
use tailor_experiment::{Assigner, Experiment, Status};
use tailor_server::experiments::Bandits;
use tailor_store::{ExposureRow, Store};

use crate::config::Config;

/// Days of simulated serving before now.
const DAYS: i64 = 14;
/// Share of the control's click-throughs the simulation drops.
const CONTROL_LOSS: f64 = 0.15;
/// Share of click-throughs that reward each home layout (by arm name; others: all).
const LAYOUT_KEEP: [(&str, f64); 3] = [("carousel", 0.8), ("grid", 1.0), ("list", 0.6)];

/// What [`simulate`] made, stored by [`History::store`] once the events are.
#[derive(Default)]
pub(crate) struct History {
    /// The experiment, started before the first simulated list.
    pub(crate) experiment: Option<Experiment>,
    /// Its exposures.
    pub(crate) exposures: Vec<ExposureRow>,
    /// The home bandit after the simulated decisions.
    bandits: Option<Bandits>,
    /// How many decisions it made.
    pub(crate) decisions: usize,
}

/// One generated home-page list.
struct List {
    user: String,
    ts: Timestamp,
    items: Vec<String>,
    clicked: bool,
}

/// Runs the last [`DAYS`] days of generated home lists through the configured experiment
/// on the home slot and the home bandit, retagging `events` in place.
pub(crate) fn simulate(events: &mut Vec<Event>, config: &Config, end: Timestamp) -> Result<History> {
    let from = Timestamp(end.0 - DAYS * 86_400_000);
    let mut lists: BTreeMap<String, List> = BTreeMap::new();
    for e in events.iter() {
        let (Some(rec), Some(user)) = (&e.rec_id, &e.user) else { continue };
        if e.ts < from || !rec.starts_with("demo-") || e.context.page.as_deref() != Some("home") {
            continue;
        }
        let list = lists.entry(rec.clone()).or_insert_with(|| List {
            user: user.as_str().to_string(),
            ts: e.ts,
            items: Vec::new(),
            clicked: false,
        });
        if e.kind == EventKind::Impression {
            list.items.extend(e.item.as_ref().map(|i| i.as_str().to_string()));
        }
    }
    for e in events.iter() {
        if e.kind != EventKind::Impression
            && let Some(list) = e.rec_id.as_ref().and_then(|r| lists.get_mut(r))
        {
            list.clicked = true;
        }
    }
    let mut rng = Rng::new(config.demo.seed ^ 0xE8_9E_51);
    let mut history = History::default();
    // rec_id → (new rec_id, whether its click-throughs are dropped).
    let mut retag: std::collections::HashMap<String, (String, bool)> = Default::default();
    if let Some(spec) = config.serve.experiments.iter().find(|e| e.covers_slot(Some("home"))) {
        let assigner = Assigner::new(spec)?;
        let started = Timestamp(from.0 - 3_600_000);
        let mut exp = Experiment::create(spec.clone(), started, Some("demo".into()))?;
        exp.transition(Status::Running, started, Some("demo".into()))?;
        for (rec, list) in &lists {
            let Some(variant) = assigner.variant(&list.user) else { continue };
            let tagged = format!("{rec}.{}.{}", spec.name, spec.variants[variant].name);
            let exposure = Exposure {
                rec_id: tagged.clone(),
                unit: list.user.clone(),
                variant,
                ts: list.ts,
                items: list.items.clone(),
                segment: None,
            };
            history.exposures.push(ExposureRow {
                experiment: spec.name.clone(),
                unit: list.user.clone(),
                record: serde_json::to_vec(&exposure)?,
            });
            retag.insert(rec.clone(), (tagged, variant == 0 && rng.chance(CONTROL_LOSS)));
        }
        history.experiment = Some(exp);
    }
    // The click on a listed item comes a second before the view of its page (the widget
    // reports it; the experiment's CTR counts clicks).
    let mut clicks = Vec::new();
    for e in events.iter_mut() {
        let Some((tagged, dropped)) = e.rec_id.as_ref().and_then(|r| retag.get(r)) else { continue };
        e.rec_id = if *dropped && e.kind != EventKind::Impression { None } else { Some(tagged.clone()) };
        if e.kind == EventKind::View && e.rec_id.is_some() {
            let mut click = e.clone();
            click.kind = EventKind::Click;
            click.ts = Timestamp(e.ts.0 - 1000);
            click.id = None;
            clicks.push(click);
        }
    }
    events.extend(clicks);
    events.sort_by_key(|e| e.ts);
    let home: Vec<_> = config.serve.bandits.iter().filter(|b| b.slot == "home").cloned().collect();
    if !home.is_empty() {
        let bandits = Bandits::open(&home, config.store.data_dir.join("bandits.json")).context("the demo's bandit")?;
        let mut by_time: Vec<(&String, &List)> = lists.iter().collect();
        by_time.sort_by_key(|(_, l)| l.ts);
        for (rec, list) in by_time {
            let Some(d) = bandits.decide("home", &[]) else { continue };
            let Some(id) = d.decision_id.as_deref() else { continue };
            let rec = retag.get(rec).map_or(rec.as_str(), |t| t.0.as_str());
            bandits.link(rec, id);
            let keep = LAYOUT_KEEP.iter().find(|(arm, _)| *arm == d.layout).map_or(1.0, |a| a.1);
            if list.clicked && rng.chance(keep) {
                bandits.reward(rec);
            }
            history.decisions += 1;
        }
        history.bandits = Some(bandits);
    }
    Ok(history)
}

impl History {
    /// Stores the experiment, its exposures and the bandit state.
    pub(crate) fn store(&self, store: &dyn Store) -> Result<()> {
        if let Some(exp) = &self.experiment {
            tailor_server::experiments::save(store, exp)?;
            store.append_exposures(&self.exposures)?;
        }
        if let Some(b) = &self.bandits {
            b.persist().context("saving the demo's bandit state")?;
        }
        Ok(())
    }
}
