//! Data assets on a dev node through the CLI: a CSV registers as an asset
//! (schema, rows and a salted root on chain, the rows and the salt left in
//! the owner's directory), grants and revocations, and the history the
//! chain keeps of them; the rows appear nowhere in the node's files.

#![allow(clippy::unwrap_used)]

mod common;

use common::{contains, ok_json, DevNode};

use serde_json::Value;

#[test]
fn a_csv_becomes_an_asset_whose_rows_stay_with_their_owner() {
    let tmp = tempfile::tempdir().unwrap();
    let node = DevNode::start(&tmp.path().join("dev"), "standard");
    let owner = node.data_dir.join("dev-keys/dev-0.key");
    let other = node.data_dir.join("dev-keys/dev-1.key");
    let other_addr = ok_json(node.cli(&["key", "show", other.to_str().unwrap(), "--json"]))
        ["address"]
        .as_str()
        .unwrap()
        .to_string();
    let owned = tmp.path().join("owner");
    std::fs::create_dir_all(&owned).unwrap();
    let csv = owned.join("customers.csv");
    let mut text = String::from("id,age,score\n");
    for i in 0..5 {
        text.push_str(&format!("zq-secret-row-{i},{},{}.5\n", 30 + i, i));
    }
    std::fs::write(&csv, text).unwrap();

    let reg = |column: &str| {
        node.cli(&[
            "data",
            "register",
            "--name",
            "customers",
            "--file",
            csv.to_str().unwrap(),
            "--key-column",
            column,
            "--price",
            "10",
            "--agent",
            "127.0.0.1:9700",
            "--key",
            owner.to_str().unwrap(),
            "--json",
        ])
    };
    let bad = reg("email");
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stdout).contains("unknown_column")
            || String::from_utf8_lossy(&bad.stderr).contains("unknown_column")
    );
    // A malformed file (a row short of a field) registers nothing.
    let broken = owned.join("broken.csv");
    std::fs::write(&broken, "id,age\na,1\nb\n").unwrap();
    let out = node.cli(&[
        "data",
        "register",
        "--name",
        "broken",
        "--file",
        broken.to_str().unwrap(),
        "--key-column",
        "id",
        "--price",
        "1",
        "--agent",
        "127.0.0.1:9700",
        "--key",
        owner.to_str().unwrap(),
        "--json",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("bad_csv"),
        "{out:?}"
    );
    assert!(!owned.join("broken.csv.salt").exists());

    let r = ok_json(reg("id"));
    assert_eq!(r["asset"], 1, "{r}");
    let commitment = r["commitment"].as_str().unwrap().to_string();
    assert_eq!(commitment.len(), 66);
    let salt = std::fs::read_to_string(owned.join("customers.csv.salt")).unwrap();
    assert_eq!(salt.len(), 64, "32 bytes of salt, kept beside the file");

    let a = ok_json(node.cli(&["data", "show", "1", "--json"]));
    assert_eq!(a["rows"], 5);
    assert_eq!(a["commitment"], commitment.as_str());
    assert_eq!(a["schema"][0]["type"], "string");
    assert_eq!(a["schema"][1]["type"], "int");
    assert_eq!(a["schema"][2]["type"], "float");
    assert_eq!(
        ok_json(node.cli(&["data", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // Grants: only the owner; then revoked.
    let grant = |key: &std::path::Path| {
        node.cli(&[
            "data",
            "grant",
            "1",
            "--to",
            &other_addr,
            "--protocols",
            "psi-ecdh,psi-ot",
            "--columns",
            "id",
            "--uses",
            "3",
            "--key",
            key.to_str().unwrap(),
            "--json",
        ])
    };
    let refused = grant(&other);
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stdout).contains("not_owner")
            || String::from_utf8_lossy(&refused.stderr).contains("not_owner")
    );
    let g = ok_json(grant(&owner));
    assert_eq!(g["grant"], 1);
    ok_json(node.cli(&[
        "data",
        "revoke",
        "1",
        "--grant",
        "1",
        "--key",
        owner.to_str().unwrap(),
        "--json",
    ]));

    let h = ok_json(node.cli(&["data", "history", "1", "--json"]));
    let actions: Vec<&str> = h
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["registered", "granted", "revoked"]);
    let rest = reqwest::blocking::get(format!(
        "{}/v1/chains/main/modules/data/assets/1/history",
        node.url()
    ))
    .unwrap()
    .json::<Value>()
    .unwrap();
    assert_eq!(rest, h);

    // An audit opens row 2 against the root on chain; a changed file, or a
    // row past the end, cannot be proven.
    let p = ok_json(node.cli(&[
        "data",
        "prove",
        "1",
        "--row",
        "2",
        "--file",
        csv.to_str().unwrap(),
        "--json",
    ]));
    assert_eq!(p["valid"], true);
    assert_eq!(p["root"], commitment.as_str());
    assert_eq!(p["fields"][0], "zq-secret-row-2");
    assert!(!p["path"].as_array().unwrap().is_empty());
    // Without --file, from the owner's directory: the file is found by its
    // commitment.
    let found = std::process::Command::new(common::bin())
        .current_dir(tmp.path())
        .args([
            "--node",
            &node.url(),
            "data",
            "prove",
            "1",
            "--row",
            "2",
            "--json",
        ])
        .output()
        .unwrap();
    let found = ok_json(found);
    assert_eq!(found["fields"], p["fields"]);
    assert_eq!(found["valid"], true);
    let past = node.cli(&[
        "data",
        "prove",
        "1",
        "--row",
        "5",
        "--file",
        csv.to_str().unwrap(),
        "--json",
    ]);
    assert!(String::from_utf8_lossy(&past.stdout).contains("bad_row"));
    let changed = owned.join("changed.csv");
    std::fs::write(
        &changed,
        std::fs::read_to_string(&csv)
            .unwrap()
            .replace("row-4,34", "row-4,35"),
    )
    .unwrap();
    std::fs::copy(
        owned.join("customers.csv.salt"),
        owned.join("changed.csv.salt"),
    )
    .unwrap();
    let wrong = node.cli(&[
        "data",
        "prove",
        "1",
        "--row",
        "0",
        "--file",
        changed.to_str().unwrap(),
        "--json",
    ]);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stdout).contains("commitment_mismatch"));

    // The rows never reached the chain's files (nor its logs there),
    // though what was registered did (the search finds it).
    assert!(contains(&node.data_dir, b"customers").is_some());
    assert_eq!(contains(&node.data_dir, b"zq-secret-row"), None);
}
