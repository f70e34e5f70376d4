//! Known answers for the recommendation models.

use proptest::prelude::*;
use tailor_core::{Interactions, UserIdx};
use tailor_recommend::als::{AlsParams, Solver};
use tailor_recommend::bpr::{BprParams, Negatives};
use tailor_recommend::ease::EaseParams;
use tailor_recommend::knn::{KnnParams, Weighting};
use tailor_recommend::popularity::Popularity;
use tailor_recommend::{Filter, History, Model};

fn matrix(n_users: usize, n_items: usize, cells: &[(u32, u32, f32)]) -> Interactions {
    let mut cells = cells.to_vec();
    cells.sort_by_key(|c| (c.0, c.1));
    cells.dedup_by_key(|c| (c.0, c.1));
    let mut indptr = vec![0usize; n_users + 1];
    for c in &cells {
        indptr[c.0 as usize + 1] += 1;
    }
    for u in 0..n_users {
        indptr[u + 1] += indptr[u];
    }
    Interactions::from_csr(
        n_users,
        n_items,
        indptr,
        cells.iter().map(|c| c.1).collect(),
        cells.iter().map(|c| c.2).collect(),
    )
    .expect("valid CSR")
}

/// Two taste groups: users 0..10 like items 0..8, users 10..20 like items 8..16; user 0
/// has not seen item 3 and user 10 has not seen item 11.
fn checkerboard() -> Interactions {
    let mut cells = Vec::new();
    for u in 0..20u32 {
        let group = u / 10;
        for i in group * 8..group * 8 + 8 {
            if (u, i) != (0, 3) && (u, i) != (10, 11) {
                cells.push((u, i, 1.0));
            }
        }
    }
    matrix(20, 16, &cells)
}

fn first(model: &dyn Model, m: &Interactions, u: u32) -> u32 {
    model.recommend(Some(u), History::of(m, UserIdx(u)), 1, &Filter::default())[0].0
}

#[test]
fn the_held_out_cell_of_a_checkerboard_ranks_first() {
    let m = checkerboard();
    let models: Vec<Box<dyn Model>> = vec![
        Box::new(EaseParams { lambda: 1.0, binary: true }.fit(&m).expect("ease")),
        Box::new(KnnParams::default().fit(&m).expect("knn")),
        Box::new(
            KnnParams { weighting: Weighting::Bm25 { k1: 1.2, b: 0.75 }, ..KnnParams::default() }
                .fit(&m)
                .expect("bm25"),
        ),
        Box::new(KnnParams { weighting: Weighting::Tfidf, ..KnnParams::default() }.fit(&m).expect("tfidf")),
        Box::new(
            AlsParams { factors: 4, regularization: 0.1, iterations: 10, ..AlsParams::default() }.fit(&m).expect("als"),
        ),
        Box::new(
            AlsParams {
                factors: 4,
                regularization: 0.1,
                iterations: 10,
                solver: Solver::Cholesky,
                ..AlsParams::default()
            }
            .fit(&m)
            .expect("als"),
        ),
        Box::new(BprParams { factors: 8, epochs: 300, ..BprParams::default() }.fit(&m).expect("bpr")),
        Box::new(
            BprParams { factors: 8, epochs: 300, negatives: Negatives::Popularity, ..BprParams::default() }
                .fit(&m)
                .expect("bpr"),
        ),
        Box::new(
            BprParams {
                factors: 8,
                epochs: 300,
                loss: tailor_recommend::bpr::Loss::Warp { max_trials: 50 },
                ..BprParams::default()
            }
            .fit(&m)
            .expect("warp"),
        ),
    ];
    for model in &models {
        assert_eq!(first(model.as_ref(), &m, 0), 3, "{}", model.name());
        assert_eq!(first(model.as_ref(), &m, 10), 11, "{}", model.name());
    }
}

#[test]
fn als_with_full_rank_and_no_regularisation_reconstructs_the_matrix() {
    // Every cell has confidence 1 (alpha = 0): plain least squares on the 0/1 matrix, which
    // rank = n_items factors fit exactly.
    let cells: Vec<(u32, u32, f32)> = (0..12u32)
        .flat_map(|u| (0..6u32).filter(move |i| (u * 7 + i * 3) % 4 != 0).map(move |i| (u, i, 1.0)))
        .collect();
    let m = matrix(12, 6, &cells);
    let model =
        AlsParams { factors: 6, regularization: 0.0, alpha: 0.0, iterations: 40, solver: Solver::Cholesky, seed: 1 }
            .fit(&m)
            .expect("fits");
    for u in 0..12u32 {
        for i in 0..6u32 {
            let want = m.get(UserIdx(u), tailor_core::ItemIdx(i));
            let got: f32 = model.user(u).expect("u").iter().zip(model.item(i).expect("i")).map(|(a, b)| a * b).sum();
            assert!((got - want).abs() < 1e-3, "({u}, {i}): {got} vs {want}");
        }
    }
}

#[test]
fn fold_in_equals_an_exact_refit_of_the_user() {
    let m = checkerboard();
    // Sweep t+1 solves every user exactly against the item factors of sweep t: that is
    // what fold-in computes from the model after sweep t.
    let users = [0u32, 5, 10, 19];
    let mut folded: Vec<Vec<f32>> = Vec::new();
    let mut checked = 0;
    let params =
        AlsParams { factors: 6, regularization: 0.05, iterations: 5, solver: Solver::Cholesky, ..AlsParams::default() };
    params
        .fit_with(&m, |_, model| {
            for (n, u) in users.iter().enumerate() {
                if let Some(f) = folded.get(n) {
                    let trained = model.user(*u).expect("user");
                    for (a, b) in f.iter().zip(trained) {
                        assert!((a - b).abs() < 1e-4 * (1.0 + b.abs()), "user {u}: {f:?} vs {trained:?}");
                    }
                    checked += 1;
                }
            }
            folded = users.iter().map(|u| model.fold_in(History::of(&m, UserIdx(*u)))).collect();
            true
        })
        .expect("fits");
    assert_eq!(checked, 4 * 4);
    // A new user with user 0's history gets user 0's recommendations.
    let model = params.fit(&m).expect("fits");
    let h = History::of(&m, UserIdx(0));
    assert_eq!(model.recommend(None, h, 1, &Filter::default())[0].0, 3);
}

#[test]
fn explanations_name_the_contributing_items() {
    let m = checkerboard();
    let knn = KnnParams::default().fit(&m).expect("knn");
    let h = History::of(&m, UserIdx(0));
    let why = knn.explain(h, 3);
    assert!(!why.is_empty() && why.iter().all(|(i, _)| *i < 8), "{why:?}");
    let als = AlsParams { factors: 4, regularization: 0.1, solver: Solver::Cholesky, ..AlsParams::default() }
        .fit(&m)
        .expect("als");
    let why = als.explain(h, 3);
    let total: f32 = why.iter().map(|w| w.1).sum();
    let x = als.fold_in(h);
    let score: f32 = x.iter().zip(als.item(3).expect("item")).map(|(a, b)| a * b).sum();
    assert!((total - score).abs() < 1e-3, "contributions {total} sum to the fold-in score {score}");
    // One factorisation for several items gives each item's own explanation.
    let many = als.explain_many(h, &[3, 5, 1]);
    assert_eq!(many, vec![why.clone(), als.explain(h, 5), als.explain(h, 1)]);
    let ease = EaseParams { lambda: 1.0, binary: true }.fit(&m).expect("ease");
    assert!(ease.explain(h, 3).first().is_some_and(|(i, w)| *i < 8 && *w > 0.0));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Recommendations never contain the user's history or a filtered item, and are the
    /// top scores of the rest.
    #[test]
    fn filters_never_leak(
        cells in prop::collection::vec((0u32..8, 0u32..30, 1u32..5), 1..120),
        excluded in prop::collection::vec(0u32..30, 0..10),
        k in 1usize..12,
    ) {
        let cells: Vec<(u32, u32, f32)> = cells.into_iter().map(|(u, i, w)| (u, i, w as f32)).collect();
        let m = matrix(8, 30, &cells);
        let f = Filter::excluding(excluded.clone());
        if m.nnz() == 0 {
            return Ok(());
        }
        let models: Vec<Box<dyn Model>> = vec![
            Box::new(Popularity::fit(&m)),
            Box::new(EaseParams::default().fit(&m).expect("ease")),
            Box::new(KnnParams::default().fit(&m).expect("knn")),
            Box::new(AlsParams { factors: 3, iterations: 2, ..AlsParams::default() }.fit(&m).expect("als")),
            Box::new(BprParams { factors: 3, epochs: 2, ..BprParams::default() }.fit(&m).expect("bpr")),
        ];
        for model in &models {
            for u in 0..8u32 {
                let h = History::of(&m, UserIdx(u));
                let recs = model.recommend(Some(u), h, k, &f);
                for (i, _) in &recs {
                    prop_assert!(!h.items.contains(i) && !excluded.contains(i), "{} leaked {i}", model.name());
                }
                prop_assert!(recs.len() <= k);
                let mut scores = vec![0f32; 30];
                model.score(Some(u), h, &mut scores);
                let best_left = (0..30u32)
                    .filter(|i| !h.items.contains(i) && !excluded.contains(i) && !recs.iter().any(|r| r.0 == *i))
                    .map(|i| scores[i as usize])
                    .fold(f32::NEG_INFINITY, f32::max);
                if let Some(last) = recs.last() {
                    prop_assert!(last.1 >= best_left);
                }
            }
        }
    }
}

#[test]
fn popularity_negatives_terminate_when_every_popular_item_is_seen() {
    // Items 0..3 are the only ones with interactions and user 0 has all of them.
    let m = matrix(2, 10, &[(0, 0, 1.0), (0, 1, 1.0), (0, 2, 1.0), (1, 0, 1.0)]);
    let model = BprParams { factors: 2, epochs: 3, negatives: Negatives::Popularity, ..BprParams::default() }
        .fit(&m)
        .expect("fits");
    assert_eq!(model.n_items(), 10);
}

/// `tests/data/als-v1.json` was written by tailor 0.1 (`tailor recommend --model als --params
/// factors=4,regularization=0.1,iterations=10,solver=cholesky --save ...` on the checkerboard
/// of `checkerboard()` with ids u0..u19 / i0..i15). Later builds must keep loading it.
#[test]
fn a_committed_version_1_model_file_still_loads() {
    use tailor_recommend::file::{AnyModel, FORMAT_VERSION, ModelFile};
    let f = ModelFile::from_json(include_bytes!("../data/als-v1.json")).expect("loads");
    assert_eq!(f.version, 1);
    const { assert!(FORMAT_VERSION >= 1) };
    assert!(matches!(f.model, AnyModel::Als(_)));
    assert_eq!((f.users.len(), f.items.len()), (20, 16));
    // Rebuild the history of u0 in the file's item numbering: it lacks i3 only.
    let pos = |id: &str| f.items.iter().position(|x| x == id).expect("item") as u32;
    let mut hist: Vec<u32> = (0..8).filter(|i| *i != 3).map(|i| pos(&format!("i{i}"))).collect();
    hist.sort_unstable();
    let w = vec![1f32; hist.len()];
    let h = History { items: &hist, weights: &w, recency: None };
    let u0 = f.users.iter().position(|u| u == "u0").expect("u0") as u32;
    let best = f.model.recommend(Some(u0), h, 1, &Filter::default());
    assert_eq!(f.items[best[0].0 as usize], "i3");
    // A newer layout is refused with a clear message; garbage is refused.
    let newer =
        String::from_utf8_lossy(include_bytes!("../data/als-v1.json")).replacen("\"version\":1", "\"version\":99", 1);
    let err = ModelFile::from_json(newer.as_bytes()).expect_err("newer");
    assert!(err.to_string().contains("version 99 is newer than this tailor understands"), "{err}");
    assert!(ModelFile::from_json(b"{\"format\":\"x\",\"version\":1}").is_err());
}

#[test]
fn model_files_round_trip_every_model() {
    use tailor_recommend::file::{AnyModel, ModelFile, fingerprint};
    let m = checkerboard();
    let tokens: Vec<Vec<String>> = (0..16).map(|i| vec![format!("group:{}", i % 4), format!("id:{i}")]).collect();
    let times: Vec<f64> = (0..m.nnz()).map(|p| p as f64).collect();
    let models = vec![
        AnyModel::Popular(Popularity::fit(&m)),
        AnyModel::Itemknn(KnnParams::default().fit(&m).expect("knn")),
        AnyModel::Als(AlsParams { factors: 4, iterations: 3, ..AlsParams::default() }.fit(&m).expect("als")),
        AnyModel::Bpr(BprParams { factors: 4, epochs: 3, ..BprParams::default() }.fit(&m).expect("bpr")),
        AnyModel::Ease(EaseParams::default().fit(&m).expect("ease")),
        AnyModel::Content(tailor_recommend::content::ContentModel::fit(&tokens)),
        AnyModel::Hybrid(
            tailor_recommend::hybrid::HybridParams { ease: EaseParams::default(), beta: None }
                .fit(&m, &times, &tokens)
                .expect("hybrid"),
        ),
    ];
    let users: Vec<String> = (0..20).map(|u| format!("u{u}")).collect();
    let items: Vec<String> = (0..16).map(|i| format!("i{i}")).collect();
    for model in models {
        let f = ModelFile::new(model, &m, users.clone(), items.clone(), "2026-01-01T00:00:00Z".into());
        let back = ModelFile::from_json(&f.to_json().expect("encodes")).expect("decodes");
        assert_eq!(back, f);
        assert_eq!(back.fingerprint, fingerprint(&m));
    }
}

/// Every model answers "similar items" and "why" through the trait (and through the
/// file enum, which must forward rather than fall back to the defaults).
#[test]
fn similar_items_and_explanations_through_the_trait() {
    use tailor_recommend::file::AnyModel;
    let m = checkerboard();
    let models = vec![
        AnyModel::Itemknn(KnnParams::default().fit(&m).expect("knn")),
        AnyModel::Als(AlsParams { factors: 4, iterations: 10, ..AlsParams::default() }.fit(&m).expect("als")),
        AnyModel::Bpr(BprParams { factors: 4, epochs: 200, ..BprParams::default() }.fit(&m).expect("bpr")),
        AnyModel::Ease(EaseParams { lambda: 1.0, binary: true }.fit(&m).expect("ease")),
    ];
    let history = History::of(&m, tailor_core::UserIdx(0));
    for model in &models {
        let similar = model.similar_items(0, 5);
        assert!(!similar.is_empty() && similar.iter().all(|s| s.0 != 0), "{}: {similar:?}", model.name());
        // The checkerboard's item 0 goes with the items of its half (0..8).
        assert!(similar[0].0 < 8, "{}: {similar:?}", model.name());
        let why = model.explain(history, 3);
        assert!(!why.is_empty() && why.iter().all(|(h, _)| history.items.contains(h)), "{}: {why:?}", model.name());
        assert!(why.windows(2).all(|w| w[0].1 >= w[1].1), "{}: sorted {why:?}", model.name());
    }
    let popular = AnyModel::Popular(Popularity::fit(&m));
    assert!(popular.similar_items(0, 5).is_empty() && popular.explain(history, 3).is_empty());
    assert!(models[0].similar_items(999, 5).is_empty());
}

/// The batched (GEMM) path of factor models returns what one-by-one scoring returns.
#[test]
fn batch_recommendations_equal_one_by_one() {
    use tailor_recommend::file::AnyModel;
    let m = checkerboard();
    let models = vec![
        AnyModel::Als(AlsParams { factors: 6, iterations: 5, ..AlsParams::default() }.fit(&m).expect("als")),
        AnyModel::Bpr(BprParams { factors: 6, epochs: 20, ..BprParams::default() }.fit(&m).expect("bpr")),
        AnyModel::Ease(EaseParams::default().fit(&m).expect("ease")),
    ];
    let filter = Filter::excluding(vec![5, 12]);
    // Every user, plus one unknown to the model (served by the fallback).
    let mut users: Vec<(Option<u32>, History<'_>)> =
        (0..20u32).map(|u| (Some(u), History::of(&m, UserIdx(u)))).collect();
    users.push((Some(999), History { items: &[0, 1], weights: &[1.0, 1.0], recency: None }));
    for model in &models {
        let batch = model.recommend_batch(&users, 4, &filter);
        for ((u, h), got) in users.iter().zip(&batch) {
            let want = model.recommend(*u, *h, 4, &filter);
            let ids = |v: &[(u32, f32)]| v.iter().map(|x| x.0).collect::<Vec<_>>();
            assert_eq!(ids(got), ids(&want), "{} user {u:?}", model.name());
            for (a, b) in got.iter().zip(&want) {
                assert!(
                    (a.1 - b.1).abs() < 1e-4 * (1.0 + b.1.abs()),
                    "{} user {u:?}: {got:?} vs {want:?}",
                    model.name()
                );
            }
        }
    }
}
