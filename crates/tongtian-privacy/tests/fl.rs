//! `fl` among five parties over real sessions, on the public breast
//! cancer data set split by rows: the federated model's accuracy is within
//! one percentage point of central training on the pooled rows; every
//! round is reported with its participants and model commitment; a client
//! that goes away mid-job is dropped and the rounds go on.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use tongtian_privacy::fl::{
    accuracy, initial_model, model_accuracy, train_local, train_model, Federated, FlInput, FlParams,
};
use tongtian_privacy::protocol::loopback_mesh;
use tongtian_privacy::{PrivacyProtocol, SessionConfig};

const JOB: [u8; 32] = [8; 32];

/// Breast cancer, standardised (as parties agreeing on a scaling would),
/// rows dealt round-robin to `n` parties.
fn inputs(n: usize) -> (FlParams, Vec<FlInput>) {
    let d = smartcore::dataset::breast_cancer::load_dataset();
    let (rows, k) = (d.num_samples, d.num_features);
    let col = |c: usize| {
        (0..rows)
            .map(|r| d.data[r * k + c] as f64)
            .collect::<Vec<f64>>()
    };
    let mut cols: Vec<Vec<f64>> = (0..k).map(col).collect();
    for c in cols.iter_mut() {
        let m = c.iter().sum::<f64>() / rows as f64;
        let s = (c.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / rows as f64).sqrt();
        for x in c.iter_mut() {
            *x = (*x - m) / s;
        }
    }
    let features: Vec<String> = (0..k).map(|c| format!("f{c}")).collect();
    let mut out: Vec<FlInput> = (0..n).map(|_| FlInput::default()).collect();
    for r in 0..rows {
        let p = &mut out[r % n];
        p.keys.push(format!("row-{r}"));
        for (c, name) in features.iter().enumerate() {
            p.columns.entry(name.clone()).or_default().push(cols[c][r]);
        }
        p.columns
            .entry("y".into())
            .or_default()
            .push(d.target[r] as f64);
    }
    let params = FlParams {
        job: JOB,
        features,
        label: "y".into(),
        rounds: 10,
        min_clients: 3,
        local_epochs: 2,
        learning_rate: 0.1,
        batch: 16,
        holdout: 0.25,
        hidden: 0,
    };
    (params, out)
}

/// Rows (x with the bias) and labels.
type Rows = (Vec<Vec<f64>>, Vec<f64>);

/// Every party's rows, split as the protocol splits: (train, test).
fn pooled(p: &FlParams, ins: &[FlInput]) -> (Rows, Rows) {
    let (mut tr, mut te): (Rows, Rows) = Default::default();
    for i in ins {
        for (r, key) in i.keys.iter().enumerate() {
            let mut x: Vec<f64> = p.features.iter().map(|f| i.columns[f][r]).collect();
            x.push(1.0);
            let side = if tongtian_privacy::lr::held_out(&p.job, key, p.holdout) {
                &mut te
            } else {
                &mut tr
            };
            side.0.push(x);
            side.1.push(i.columns["y"][r]);
        }
    }
    (tr, te)
}

async fn run(
    p: &FlParams,
    ins: Vec<FlInput>,
    kill: Option<usize>,
) -> Vec<Result<Option<tongtian_privacy::fl::FlModel>, String>> {
    let peers = loopback_mesh(ins.len(), JOB, SessionConfig::default())
        .await
        .unwrap();
    let mut handles = Vec::new();
    for (mut peer, input) in peers.into_iter().zip(ins) {
        let p = p.clone();
        let role = peer.me();
        handles.push(tokio::spawn(async move {
            if Some(role) == kill {
                // This client goes away after the first round's model.
                let _ = peer.with(0).unwrap().recv().await;
                return Ok(None);
            }
            Federated
                .run(role, &mut peer, &p, input)
                .await
                .map(|r| r.output)
                .map_err(|e| e.to_string())
        }));
    }
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn federated_training_matches_central_and_survives_a_dropout() {
    let (p, ins) = inputs(5);
    let (train, test) = pooled(&p, &ins);
    let total_epochs = p.rounds * p.local_epochs;
    let central = train_local(
        &vec![0.0; p.features.len() + 1],
        &train,
        total_epochs,
        p.learning_rate,
        p.batch,
    );
    let central_acc = accuracy(&central, &test).unwrap();

    let got = run(&p, ins.clone(), None).await;
    let model = got[0].clone().unwrap().unwrap();
    assert!(
        got[1..].iter().all(|r| matches!(r, Ok(None))),
        "only role 0 learns the model"
    );
    let mut w = model.weights.clone();
    w.push(model.bias);
    let fl_acc = accuracy(&w, &test).unwrap();
    eprintln!("federated {fl_acc:.4}, central {central_acc:.4}");
    assert!(central_acc > 0.9);
    assert!(
        (fl_acc - central_acc).abs() <= 0.01 + 1e-9,
        "{fl_acc} vs {central_acc}"
    );
    assert_eq!(model.rounds.len(), 10);
    assert!(model
        .rounds
        .iter()
        .all(|r| r.participants == vec![0, 1, 2, 3, 4]));
    // Equal to FedAvg in the clear, up to fixed point.
    let plain = Federated.reference(&p, ins.clone())[0].clone().unwrap();
    for (a, b) in model.weights.iter().zip(&plain.weights) {
        assert!((a - b).abs() < 1e-4, "{a} vs {b}");
    }

    // Client 3 goes away: the rounds go on with the other four.
    let got = run(&p, ins, Some(3)).await;
    let model = got[0].clone().unwrap().unwrap();
    assert_eq!(model.rounds.len(), 10);
    assert!(model.rounds.iter().all(|r| !r.participants.contains(&3)));
    assert!(model.rounds.iter().all(|r| r.participants.len() == 4));
    let mut w = model.weights.clone();
    w.push(model.bias);
    assert!(accuracy(&w, &test).unwrap() > 0.9);

    // A client whose update is not a number leaves; the others go on.
    let (p2, mut bad_ins) = inputs(5);
    bad_ins[2].columns.get_mut("f0").unwrap()[0] = f64::NAN;
    let got = run(&p2, bad_ins, None).await;
    let model = got[0].clone().unwrap().unwrap();
    assert!(got[2].as_ref().unwrap_err().contains("value_out_of_range"));
    assert!(model.rounds.iter().all(|r| !r.participants.contains(&2)));
    assert_eq!(model.rounds.len(), 10);

    // A small perceptron the same way, against the same network trained
    // centrally from the same start.
    let (mut p, ins) = inputs(5);
    p.hidden = 8;
    p.rounds = 15;
    let got = run(&p, ins.clone(), None).await;
    let model = got[0].clone().unwrap().unwrap();
    assert_eq!(model.model, "mlp");
    assert_eq!(model.weights.len(), 8 * 31 + 8 + 1);
    let fl_acc = model_accuracy(&p, &model.weights, &test).unwrap();
    let mut central_p = p.clone();
    central_p.local_epochs = p.rounds * p.local_epochs;
    let _ = ins;
    let start = initial_model(&p, p.features.len() + 1);
    let central = train_model(&central_p, &start, &train);
    let central_acc = model_accuracy(&p, &central, &test).unwrap();
    eprintln!("mlp federated {fl_acc:.4}, central {central_acc:.4}");
    assert!(central_acc > 0.9);
    assert!(
        (fl_acc - central_acc).abs() <= 0.01 + 1e-9,
        "{fl_acc} vs {central_acc}"
    );
    let _ = BTreeMap::<u8, u8>::new();
}
