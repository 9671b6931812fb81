//! `lr-vertical` among three parties over real sessions, on the public
//! breast cancer data set (569 rows, 30 features, from `smartcore`): the
//! 30 features split 10/10/10 across the parties, the label with role 0;
//! trained with the clipped sigmoid (secure comparisons), the model's
//! accuracy on the held-out rows is within one percentage point of central
//! training on the same split; only role 0 learns it.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use tongtian_privacy::lr::{LogisticRegression, LrInput, LrModel, LrParams, Sigmoid};
use tongtian_privacy::protocol::loopback_mesh;
use tongtian_privacy::{PrivacyProtocol, SessionConfig};

const JOB: [u8; 32] = [3; 32];

fn breast_cancer() -> (Vec<Vec<f64>>, Vec<f64>) {
    let d = smartcore::dataset::breast_cancer::load_dataset();
    let rows = (0..d.num_samples)
        .map(|r| {
            (0..d.num_features)
                .map(|c| d.data[r * d.num_features + c] as f64)
                .collect()
        })
        .collect();
    (rows, d.target.iter().map(|t| *t as f64).collect())
}

fn setup(split: &[usize]) -> (LrParams, Vec<LrInput>) {
    let (x, y) = breast_cancer();
    let nf = x[0].len();
    let features: Vec<(String, usize)> = (0..nf)
        .map(|c| (format!("f{c}"), split[c * split.len() / nf]))
        .collect();
    let params = LrParams {
        job: JOB,
        frac: 16,
        features: features.clone(),
        label: "diagnosis".into(),
        epochs: 10,
        learning_rate: 0.5,
        batch: 64,
        holdout: 0.25,
        sigmoid: Sigmoid::Clipped,
    };
    let mut inputs: Vec<LrInput> = (0..3).map(|_| LrInput::default()).collect();
    for (r, input) in inputs.iter_mut().enumerate() {
        // Each party lists the rows in its own order.
        let order: Vec<usize> = (0..x.len())
            .map(|i| (i * (2 * r + 1) + 7 * r) % x.len())
            .collect();
        input.keys = order.iter().map(|i| format!("patient-{i:04}")).collect();
        for (c, (name, owner)) in features.iter().enumerate() {
            if *owner == r {
                input
                    .columns
                    .insert(name.clone(), order.iter().map(|&i| x[i][c]).collect());
            }
        }
        if r == 0 {
            input
                .columns
                .insert("diagnosis".into(), order.iter().map(|&i| y[i]).collect());
        }
    }
    (params, inputs)
}

async fn train(p: &LrParams, inputs: Vec<LrInput>) -> Vec<Option<LrModel>> {
    let peers = loopback_mesh(3, JOB, SessionConfig::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for (mut peer, input) in peers.into_iter().zip(inputs) {
        let p = p.clone();
        handles.push(tokio::spawn(async move {
            let role = peer.me();
            LogisticRegression
                .run(role, &mut peer, &p, input)
                .await
                .unwrap()
                .output
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn vertical_lr_matches_central_training_on_breast_cancer() {
    for split in [vec![0usize, 1, 2], vec![1, 2, 0, 0, 1, 2]] {
        let (p, inputs) = setup(&split);
        let central = LogisticRegression.reference(&p, inputs.clone())[0]
            .clone()
            .unwrap();
        let got = train(&p, inputs).await;
        assert!(
            got[1].is_none() && got[2].is_none(),
            "only role 0 learns the model"
        );
        let model = got[0].clone().unwrap();
        let (a, c) = (model.accuracy.unwrap(), central.accuracy.unwrap());
        eprintln!(
            "split {split:?}: accuracy {a:.4}, central {c:.4}, test rows {}",
            model.test_rows
        );
        assert_eq!(model.test_rows, central.test_rows);
        assert!(model.test_rows > 100);
        assert!(c > 0.9, "central training works: {c}");
        assert!((a - c).abs() <= 0.01 + 1e-9, "within one point: {a} vs {c}");
        assert_eq!(model.scaling.len(), 30);
        for (s, t) in model.scaling.iter().zip(&central.scaling) {
            assert!((s.0 - t.0).abs() < 1e-9 && (s.1 - t.1).abs() < 1e-9);
        }
    }
}

#[test]
fn the_split_is_the_same_for_every_party() {
    let a: Vec<bool> = (0..1000)
        .map(|i| tongtian_privacy::lr::held_out(&JOB, &format!("k{i}"), 0.2))
        .collect();
    let b: Vec<bool> = (0..1000)
        .map(|i| tongtian_privacy::lr::held_out(&JOB, &format!(" k{i} "), 0.2))
        .collect();
    assert_eq!(a, b);
    let share = a.iter().filter(|x| **x).count();
    assert!((150..250).contains(&share), "{share}");
    let _ = BTreeMap::<u8, u8>::new();
}
