//! The example WASM contracts and hostile modules, through the executor
//! and a real store.
#![allow(clippy::unwrap_used, clippy::cloned_ref_to_slice_refs)]

use std::sync::Arc;
use tongtian_contract_sdk::{Input, Value};
use tongtian_execution::testing::TestChain;
use tongtian_execution::Vm;
use tongtian_types::{Action, Address, Receipt, TxStatus, VmKind};
use tongtian_vm_evm::EvmVm;
use tongtian_vm_wasm::WasmVm;

const NOTARY: &[u8] = include_bytes!("../../../contracts/notary/notary.wasm");
const TRACE: &[u8] = include_bytes!("../../../contracts/trace/trace.wasm");
const RECEIVABLE: &[u8] = include_bytes!("../../../contracts/receivable/receivable.wasm");
const TOKEN: &[u8] = include_bytes!("../../../contracts/wasm-token/wasm_token.wasm");

fn chain() -> TestChain {
    let vms: Vec<Arc<dyn Vm>> = vec![WasmVm::new(), EvmVm::new()];
    TestChain::new(&[], vms)
}

fn deploy(c: &mut TestChain, k: usize, code: &[u8], args: &[Value]) -> Address {
    let r = c.run(
        k,
        Action::Deploy {
            vm: VmKind::Wasm,
            code: code.to_vec(),
            args: Input::encode("deploy", args),
            value: 0,
        },
        5_000_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    r.contract_address.unwrap()
}

fn call(
    c: &mut TestChain,
    k: usize,
    to: Address,
    method: &str,
    args: &[Value],
    value: u128,
) -> Receipt {
    c.run(
        k,
        Action::Call {
            to,
            input: Input::encode(method, args),
            value,
        },
        2_000_000,
    )
}

fn query(c: &TestChain, to: Address, method: &str, args: &[Value]) -> Result<Value, String> {
    let s = c.query(c.address(0), to, Input::encode(method, args));
    match s.result.status {
        Ok(out) => Ok(Value::decode(&out).unwrap()),
        Err(f) => Err(f.message()),
    }
}

fn failed_with(r: &Receipt, needle: &str) -> bool {
    matches!(&r.status, TxStatus::Failed { message, .. } if message.contains(needle))
}

fn addr(a: Address) -> Value {
    Value::Bytes(a.0.to_vec())
}

#[test]
fn notary_registers_once_and_answers_queries() {
    let mut c = chain();
    let ad: Vec<Address> = (0..4).map(|i| c.address(i)).collect();
    let notary = deploy(&mut c, 0, NOTARY, &[]);
    let doc = Value::Bytes(vec![0xaa; 32]);
    let r = call(
        &mut c,
        1,
        notary,
        "register",
        &[doc.clone(), Value::Str("contract v1".into())],
        0,
    );
    assert!(r.is_success(), "{:?}", r.status);
    assert_eq!(r.events[0].name, "registered");
    assert_eq!(r.events[0].emitter, notary);
    let rec = query(&c, notary, "get", &[doc.clone()]).unwrap();
    assert_eq!(rec.get("metadata"), Some(&Value::Str("contract v1".into())));
    assert_eq!(rec.get("registrant"), Some(&addr(ad[1])));
    // A duplicate is rejected with its reason and changes nothing.
    let r = call(
        &mut c,
        2,
        notary,
        "register",
        &[doc.clone(), Value::Str("forged".into())],
        0,
    );
    assert!(failed_with(&r, "duplicate"), "{:?}", r.status);
    assert!(r.events.is_empty());
    let rec = query(&c, notary, "get", &[doc]).unwrap();
    assert_eq!(rec.get("registrant"), Some(&addr(ad[1])));
    assert_eq!(query(&c, notary, "count", &[]).unwrap(), Value::Int(1));
    assert!(query(&c, notary, "get", &[Value::Bytes(vec![1])])
        .unwrap_err()
        .contains("not found"));
    // Wrong argument types get a clear error.
    let r = call(&mut c, 1, notary, "register", &[Value::Int(5)], 0);
    assert!(
        failed_with(&r, "argument 0 must be 0x-hex bytes"),
        "{:?}",
        r.status
    );
}

#[test]
fn trace_follows_custody_and_checks_inspector_signatures() {
    let mut c = chain();
    let ad: Vec<Address> = (0..4).map(|i| c.address(i)).collect();
    let trace = deploy(&mut c, 0, TRACE, &[]);
    let id = Value::Str("batch-42".into());
    assert!(call(
        &mut c,
        1,
        trace,
        "register",
        &[id.clone(), Value::Str("cold-chain vaccine".into())],
        0
    )
    .is_success());
    // Only the holder can hand over.
    let r = call(
        &mut c,
        2,
        trace,
        "handover",
        &[id.clone(), addr(ad[2]), Value::Str("steal".into())],
        0,
    );
    assert!(failed_with(&r, "only the current holder"));
    let to = ad[2];
    assert!(call(
        &mut c,
        1,
        trace,
        "handover",
        &[id.clone(), addr(to), Value::Str("truck 7".into())],
        0
    )
    .is_success());
    // The new holder files an inspection signed by an inspector (key 3).
    let inspector = &c.keys[3];
    let mut msg = b"tongtian/trace/inspection/v1batch-42".to_vec();
    msg.push(0);
    msg.extend(b"temperature ok");
    let sig = inspector.sign(&msg);
    let pk = Value::Bytes(inspector.public_key().to_vec());
    let args = [
        id.clone(),
        Value::Str("temperature ok".into()),
        pk.clone(),
        Value::Bytes(sig.clone()),
    ];
    let r = call(&mut c, 2, trace, "inspect", &args, 0);
    assert!(r.is_success(), "{:?}", r.status);
    // A signature over another result does not verify.
    let bad = [
        id.clone(),
        Value::Str("temperature bad".into()),
        pk,
        Value::Bytes(sig),
    ];
    assert!(failed_with(
        &call(&mut c, 2, trace, "inspect", &bad, 0),
        "signature does not verify"
    ));
    let h = query(&c, trace, "history", &[id]).unwrap();
    assert_eq!(h.get("holder"), Some(&addr(to)));
    let events = h.get("history").unwrap().as_list().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e.get("kind").unwrap().as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["registered", "custody", "inspection"]);
    assert_eq!(events[2].get("inspector"), Some(&addr(ad[3])));
}

#[test]
fn receivable_splits_finances_and_settles_without_double_spending() {
    let mut c = chain();
    let ad: Vec<Address> = (0..4).map(|i| c.address(i)).collect();
    let rc = deploy(&mut c, 0, RECEIVABLE, &[]);
    let (core, supplier, sub, bank) = (0, 1, 2, 3);
    let r = call(
        &mut c,
        core,
        rc,
        "issue",
        &[addr(ad[supplier]), Value::Int(1000), Value::Int(0)],
        0,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let id = Value::decode(&r.output).unwrap();
    // Splitting more than the amount, or by a non-holder, fails.
    let r = call(
        &mut c,
        supplier,
        rc,
        "split",
        &[id.clone(), addr(ad[sub]), Value::Int(1000)],
        0,
    );
    assert!(failed_with(&r, "less than the receivable"));
    let r = call(
        &mut c,
        sub,
        rc,
        "split",
        &[id.clone(), addr(ad[sub]), Value::Int(10)],
        0,
    );
    assert!(failed_with(&r, "only the holder"));
    let r = call(
        &mut c,
        supplier,
        rc,
        "split",
        &[id.clone(), addr(ad[sub]), Value::Int(300)],
        0,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let child = Value::decode(&r.output).unwrap();
    assert_eq!(
        query(&c, rc, "get", &[id.clone()]).unwrap().get("amount"),
        Some(&Value::Int(700))
    );
    assert_eq!(
        query(&c, rc, "get", &[child.clone()])
            .unwrap()
            .get("amount"),
        Some(&Value::Int(300))
    );
    // The sub-supplier sells its part to the bank at a discount.
    let r = call(
        &mut c,
        sub,
        rc,
        "offer_finance",
        &[child.clone(), addr(ad[bank]), Value::Int(270)],
        0,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let wrong_price = call(&mut c, bank, rc, "accept_finance", &[child.clone()], 100);
    assert!(failed_with(&wrong_price, "offered price"));
    let sub_before = c.account(&ad[sub]).balance;
    assert!(call(&mut c, bank, rc, "accept_finance", &[child.clone()], 270).is_success());
    assert_eq!(c.account(&ad[sub]).balance, sub_before + 270);
    // The old holder can no longer move it: no double spending.
    let r = call(
        &mut c,
        sub,
        rc,
        "transfer",
        &[child.clone(), addr(ad[sub])],
        0,
    );
    assert!(failed_with(&r, "only the holder"));
    // At maturity the core enterprise pays the bank the face amount.
    let bank_before = c.account(&ad[bank]).balance;
    let r = call(&mut c, core, rc, "settle", &[child.clone()], 300);
    assert!(r.is_success(), "{:?}", r.status);
    assert_eq!(c.account(&ad[bank]).balance, bank_before + 300);
    assert_eq!(c.account(&rc).balance, 0);
    let settled = query(&c, rc, "get", &[child.clone()]).unwrap();
    assert_eq!(settled.get("status"), Some(&Value::Str("settled".into())));
    let r = call(&mut c, core, rc, "settle", &[child], 300);
    assert!(failed_with(&r, "not active"));
}

#[test]
fn wasm_token_and_cross_vm_calls() {
    let mut c = chain();
    let ad: Vec<Address> = (0..4).map(|i| c.address(i)).collect();
    let token = deploy(&mut c, 0, TOKEN, &[Value::Int(1_000)]);
    let to = ad[1];
    assert!(call(
        &mut c,
        0,
        token,
        "transfer",
        &[addr(to), Value::Int(400)],
        0
    )
    .is_success());
    assert_eq!(
        query(&c, token, "balance_of", &[addr(to)]).unwrap(),
        Value::Int(400)
    );
    let r = call(
        &mut c,
        1,
        token,
        "transfer",
        &[addr(to), Value::Int(401)],
        0,
    );
    assert!(failed_with(&r, "insufficient balance"));

    // A proxy contract calling the WASM notary and the EVM token.
    let proxy = deploy(&mut c, 0, &wat::parse_str(PROXY).unwrap(), &[]);
    let notary = deploy(&mut c, 0, NOTARY, &[]);
    let mut input = notary.0.to_vec();
    input.extend(Input::encode(
        "register",
        &[Value::Bytes(vec![7; 32]), Value::Str("via proxy".into())],
    ));
    let r = c.run(
        0,
        Action::Call {
            to: proxy,
            input,
            value: 0,
        },
        3_000_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let rec = query(&c, notary, "get", &[Value::Bytes(vec![7; 32])]).unwrap();
    assert_eq!(
        rec.get("registrant"),
        Some(&addr(proxy)),
        "the proxy is the caller"
    );

    let abi = tongtian_vm_evm::abi::parse_abi(include_str!("../../../contracts/token/Token.abi"))
        .unwrap();
    let bin = hex::decode(include_str!("../../../contracts/token/Token.bin").trim()).unwrap();
    let args =
        tongtian_vm_evm::abi::encode_constructor(&abi, &serde_json::json!(["E", "E", "500"]))
            .unwrap();
    let r = c.run(
        0,
        Action::Deploy {
            vm: VmKind::Evm,
            code: bin,
            args,
            value: 0,
        },
        5_000_000,
    );
    let erc20 = r.contract_address.unwrap();
    let give = tongtian_vm_evm::abi::encode_call(
        &abi,
        "transfer",
        &serde_json::json!([proxy.to_string(), "50"]),
    )
    .unwrap();
    assert!(c
        .run(
            0,
            Action::Call {
                to: erc20,
                input: give,
                value: 0
            },
            200_000
        )
        .is_success());
    // The proxy pays `amount` of its ERC-20 tokens to `to`.
    let via_proxy = |c: &mut TestChain, amount: &str| {
        let data = tongtian_vm_evm::abi::encode_call(
            &abi,
            "transfer",
            &serde_json::json!([to.to_string(), amount]),
        )
        .unwrap();
        let mut input = erc20.0.to_vec();
        input.extend(data);
        c.run(
            0,
            Action::Call {
                to: proxy,
                input,
                value: 0,
            },
            3_000_000,
        )
    };
    let r = via_proxy(&mut c, "20");
    assert!(r.is_success(), "{:?}", r.status);
    assert!(r
        .events
        .iter()
        .any(|e| e.name == "log" && e.emitter == erc20));
    let bal = |c: &TestChain, who: Address| {
        let q = tongtian_vm_evm::abi::encode_call(
            &abi,
            "balanceOf",
            &serde_json::json!([who.to_string()]),
        )
        .unwrap();
        c.query(to, erc20, q).result.status.unwrap()[31]
    };
    assert_eq!((bal(&c, proxy), bal(&c, to)), (30, 20));
    // An EVM revert inside the nested call rolls back the whole proxy call.
    let r = via_proxy(&mut c, "31");
    assert!(matches!(&r.status, TxStatus::Failed { code, .. } if code == "reverted"));
    assert_eq!((bal(&c, proxy), bal(&c, to)), (30, 20));
}

/// Forwards its input (20-byte address, then call input) to that address.
const PROXY: &str = r#"(module
  (import "env" "input_len" (func $input_len (result i32)))
  (import "env" "input_read" (func $input_read (param i32)))
  (import "env" "call" (func $call (param i32 i32 i32 i32) (result i32)))
  (import "env" "result_read" (func $result_read (param i32)))
  (import "env" "ret" (func $ret (param i32 i32)))
  (import "env" "revert" (func $revert (param i32 i32)))
  (memory (export "memory") 4)
  (func (export "call")
    (local $n i32) (local $s i32) (local $len i32)
    (local.set $n (call $input_len))
    (call $input_read (i32.const 1024))
    (local.set $s (call $call (i32.const 1024) (i32.const 1044)
      (i32.sub (local.get $n) (i32.const 20)) (i32.const 0)))
    (local.set $len (i32.shr_u (local.get $s) (i32.const 1)))
    (call $result_read (i32.const 131072))
    (if (i32.and (local.get $s) (i32.const 1))
      (then (call $revert (i32.const 131072) (local.get $len))))
    (call $ret (i32.const 131072) (local.get $len))))"#;

fn deploy_result(c: &mut TestChain, code: &[u8]) -> Receipt {
    c.run(
        0,
        Action::Deploy {
            vm: VmKind::Wasm,
            code: code.to_vec(),
            args: vec![],
            value: 0,
        },
        3_000_000,
    )
}

fn code_of(r: &Receipt) -> &str {
    match &r.status {
        TxStatus::Failed { code, .. } => code,
        TxStatus::Success => "success",
    }
}

const MEM: &str = r#"(memory (export "memory") 1)"#;

#[test]
fn hostile_modules_fail_cleanly_and_the_chain_goes_on() {
    let mut c = chain();
    let float = format!(
        r#"(module {MEM} (func (export "call") (drop (f32.add (f32.const 1) (f32.const 2)))))"#
    );
    let r = deploy_result(&mut c, &wat::parse_str(float).unwrap());
    assert_eq!(code_of(&r), "invalid_code", "{:?}", r.status);
    let import = format!(r#"(module (import "wasi" "clock" (func)) {MEM} (func (export "call")))"#);
    let r = deploy_result(&mut c, &wat::parse_str(import).unwrap());
    assert!(failed_with(&r, "does not provide"), "{:?}", r.status);
    let start =
        format!(r#"(module {MEM} (func $s (loop (br 0))) (start $s) (func (export "call")))"#);
    assert_eq!(
        code_of(&deploy_result(&mut c, &wat::parse_str(start).unwrap())),
        "invalid_code"
    );
    assert_eq!(
        code_of(&deploy_result(&mut c, b"\0asm garbage")),
        "invalid_code"
    );
    assert!(failed_with(
        &deploy_result(&mut c, &wat::parse_str(format!("(module {MEM})")).unwrap()),
        "no `call` export"
    ));

    // Deployable but misbehaving at run time.
    let looping = format!(r#"(module {MEM} (func (export "call") (loop (br 0))))"#);
    let lp = deploy_result(&mut c, &wat::parse_str(looping).unwrap())
        .contract_address
        .unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: lp,
            input: vec![],
            value: 0,
        },
        100_000,
    );
    assert_eq!(code_of(&r), "out_of_gas");
    assert_eq!(r.gas_used, 100_000);
    let grow = format!(
        r#"(module {MEM} (func (export "call")
             (if (i32.eq (memory.grow (i32.const 1000)) (i32.const -1)) (then unreachable))))"#
    );
    let g = deploy_result(&mut c, &wat::parse_str(grow).unwrap())
        .contract_address
        .unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: g,
            input: vec![],
            value: 0,
        },
        100_000,
    );
    assert_eq!(code_of(&r), "trap", "{:?}", r.status);
    let recurse = format!(r#"(module {MEM} (func $f (export "call") (call $f)))"#);
    let rec = deploy_result(&mut c, &wat::parse_str(recurse).unwrap())
        .contract_address
        .unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: rec,
            input: vec![],
            value: 0,
        },
        5_000_000,
    );
    assert!(
        matches!(code_of(&r), "trap" | "out_of_gas"),
        "{:?}",
        r.status
    );

    // Bad calls and good calls share one block: only the bad ones fail.
    let notary = deploy(&mut c, 0, NOTARY, &[]);
    let bad = c.tx(
        1,
        Action::Call {
            to: lp,
            input: vec![],
            value: 0,
        },
        50_000,
    );
    let garbage = c.tx(
        2,
        Action::Call {
            to: notary,
            input: vec![1, 2, 3],
            value: 0,
        },
        200_000,
    );
    let good = c.tx(
        3,
        Action::Call {
            to: notary,
            input: Input::encode(
                "register",
                &[Value::Bytes(vec![9; 32]), Value::Str("ok".into())],
            ),
            value: 0,
        },
        500_000,
    );
    let out = c.block(vec![bad, garbage, good]).unwrap();
    let codes: Vec<&str> = out.receipts.iter().map(code_of).collect();
    assert_eq!(codes, ["out_of_gas", "reverted", "success"]);
    assert!(failed_with(&out.receipts[1], "malformed input"));
}

/// Each call bumps a mutable global and a memory cell, may grow memory
/// (input byte 1) or trap after bumping (input byte 2), and returns the
/// global, the cell and the memory size in pages as it saw them.
const STATEFUL: &str = r#"(module
  (import "env" "input_len" (func $input_len (result i32)))
  (import "env" "input_read" (func $input_read (param i32)))
  (import "env" "ret" (func $ret (param i32 i32)))
  (memory (export "memory") 1)
  (global $g (mut i32) (i32.const 41))
  (data (i32.const 2048) "\07")
  (func (export "call")
    (global.set $g (i32.add (global.get $g) (i32.const 1)))
    (i32.store8 (i32.const 2048) (i32.add (i32.load8_u (i32.const 2048)) (i32.const 1)))
    (i32.store (i32.const 4096) (global.get $g))
    (i32.store (i32.const 4100) (i32.load8_u (i32.const 2048)))
    (i32.store (i32.const 4104) (memory.size))
    (i32.store (i32.const 8192) (i32.add (i32.load (i32.const 8192)) (i32.const 1)))
    (i32.store (i32.const 4108) (i32.load (i32.const 8192)))
    (if (i32.gt_u (call $input_len) (i32.const 0))
      (then
        (call $input_read (i32.const 0))
        (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 1))
          (then (drop (memory.grow (i32.const 1)))))
        (if (i32.eq (i32.load8_u (i32.const 0)) (i32.const 2))
          (then unreachable))))
    (call $ret (i32.const 4096) (i32.const 16))))"#;

#[test]
fn every_call_starts_from_a_fresh_instance_state() {
    let mut c = chain();
    let to = deploy_result(&mut c, &wat::parse_str(STATEFUL).unwrap())
        .contract_address
        .unwrap();
    // The global, the data byte, the memory size, and a counter in a part
    // of memory that is zero in the image (restored by clearing).
    let fresh = [42u32, 8, 1, 1].map(u32::to_le_bytes).concat();
    let tx = |c: &mut TestChain, k: usize, input: Vec<u8>| {
        c.tx(
            k,
            Action::Call {
                to,
                input,
                value: 0,
            },
            200_000,
        )
    };
    // Several calls in one block, then more in later blocks, some of which
    // grow memory or trap after changing state: every call sees what a
    // newly instantiated module would.
    let txs = vec![
        tx(&mut c, 0, vec![]),
        tx(&mut c, 1, vec![]),
        tx(&mut c, 2, vec![1]),
        tx(&mut c, 3, vec![]),
        tx(&mut c, 0, vec![2]),
        tx(&mut c, 1, vec![]),
    ];
    let out = c.block(txs).unwrap();
    let codes: Vec<&str> = out.receipts.iter().map(code_of).collect();
    assert_eq!(
        codes,
        ["success", "success", "success", "success", "trap", "success"]
    );
    for (i, r) in out.receipts.iter().enumerate() {
        if i != 4 {
            assert_eq!(r.output, fresh, "call {i}");
        }
    }
    let gas: Vec<u64> = [0, 1, 3, 5]
        .iter()
        .map(|&i| out.receipts[i].gas_used)
        .collect();
    assert!(gas.windows(2).all(|w| w[0] == w[1]), "{gas:?}");
    for _ in 0..3 {
        let r = c.run(
            0,
            Action::Call {
                to,
                input: vec![],
                value: 0,
            },
            200_000,
        );
        assert_eq!(r.output, fresh);
        assert_eq!(r.gas_used, gas[0]);
    }
}
