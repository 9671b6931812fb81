//! The ERC-20 and ERC-721 examples on the EVM, through the executor and a
//! real store.
#![allow(clippy::unwrap_used)]

use serde_json::json;
use tongtian_crypto::eth::{keccak256, EthKey};
use tongtian_crypto::SuiteId;
use tongtian_execution::testing::{TestChain, TEST_CHAIN_ID};
use tongtian_types::eth::{create_address, sign_eip1559};
use tongtian_types::{Action, Address, CheckedTx, SignedTransaction, TxStatus, VmKind};
use tongtian_vm_evm::abi::{decode_output, encode_call, encode_constructor, function, parse_abi};
use tongtian_vm_evm::EvmVm;

const TOKEN_BIN: &str = include_str!("../../../contracts/token/Token.bin");
const TOKEN_ABI: &str = include_str!("../../../contracts/token/Token.abi");
const DEED_BIN: &str = include_str!("../../../contracts/deed/Deed.bin");
const DEED_ABI: &str = include_str!("../../../contracts/deed/Deed.abi");

fn chain() -> (TestChain, EthKey) {
    let eth = EthKey::dev_accounts(1).remove(0);
    (
        TestChain::new(&[Address(eth.address())], vec![EvmVm::new()]),
        eth,
    )
}

fn deploy_token(c: &mut TestChain, supply: &str) -> Address {
    let abi = parse_abi(TOKEN_ABI).unwrap();
    let args = encode_constructor(&abi, &json!(["Tongtian", "TT", supply])).unwrap();
    let r = c.run(
        0,
        Action::Deploy {
            vm: VmKind::Evm,
            code: hex::decode(TOKEN_BIN.trim()).unwrap(),
            args,
            value: 0,
        },
        5_000_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    r.contract_address.expect("contract address")
}

fn call(c: &TestChain, token: Address, method: &str, args: serde_json::Value) -> serde_json::Value {
    let abi = parse_abi(TOKEN_ABI).unwrap();
    let data = encode_call(&abi, method, &args).unwrap();
    let out = c.query(c.address(0), token, data);
    let f = function(&abi, method, args.as_array().map_or(0, |a| a.len())).unwrap();
    decode_output(f, out.result.status.as_ref().expect("query succeeds")).unwrap()
}

#[test]
fn erc20_deploys_transfers_logs_and_reverts_cleanly() {
    let (mut c, _) = chain();
    let token = deploy_token(&mut c, "1000000");
    let me = c.address(0);
    assert_eq!(
        call(&c, token, "balanceOf", json!([me.to_string()])),
        json!("1000000")
    );
    assert_eq!(call(&c, token, "symbol", json!([])), json!("TT"));

    let abi = parse_abi(TOKEN_ABI).unwrap();
    let to = Address([0xab; 20]);
    let data = encode_call(&abi, "transfer", &json!([to.to_string(), "250"])).unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: token,
            input: data,
            value: 0,
        },
        200_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let log = &r.events[0];
    assert_eq!((log.name.as_str(), log.emitter), ("log", token));
    let topics = &log.attributes[0].1;
    let transfer_sig = format!(
        "0x{}",
        hex::encode(keccak256(b"Transfer(address,address,uint256)"))
    );
    assert!(topics.starts_with(&transfer_sig), "{topics}");
    assert!(r.gas_used > 21_000 && r.gas_used < 200_000);
    assert_eq!(
        call(&c, token, "balanceOf", json!([to.to_string()])),
        json!("250")
    );
    assert_eq!(
        call(&c, token, "balanceOf", json!([me.to_string()])),
        json!("999750")
    );

    // More than the balance: reverted with the custom error, nothing moved,
    // but the nonce is used and the fee paid.
    let before = c.account(&me);
    let data = encode_call(&abi, "transfer", &json!([to.to_string(), "5000000"])).unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: token,
            input: data,
            value: 0,
        },
        200_000,
    );
    assert!(matches!(&r.status, TxStatus::Failed { code, .. } if code == "reverted"));
    let selector = &keccak256(b"InsufficientBalance(uint256,uint256)")[..4];
    assert_eq!(&r.output[..4], selector);
    assert!(r.events.is_empty());
    let after = c.account(&me);
    assert_eq!(after.nonce, before.nonce + 1);
    assert_eq!(after.balance, before.balance - r.fee);
    assert_eq!(
        call(&c, token, "balanceOf", json!([me.to_string()])),
        json!("999750")
    );

    // Too little gas: out of gas, state unchanged.
    let data = encode_call(&abi, "transfer", &json!([to.to_string(), "1"])).unwrap();
    let r = c.run(
        0,
        Action::Call {
            to: token,
            input: data,
            value: 0,
        },
        26_000,
    );
    assert!(
        matches!(&r.status, TxStatus::Failed { code, .. } if code == "out_of_gas"),
        "{:?}",
        r.status
    );
    assert_eq!(r.gas_used, 26_000);
    assert_eq!(
        call(&c, token, "balanceOf", json!([to.to_string()])),
        json!("250")
    );
}

#[test]
fn ethereum_signed_transactions_deploy_at_ethereum_addresses() {
    let (mut c, eth) = chain();
    let me = Address(eth.address());
    let abi = parse_abi(TOKEN_ABI).unwrap();
    let mut init = hex::decode(TOKEN_BIN.trim()).unwrap();
    init.extend(encode_constructor(&abi, &json!(["T", "T", "77"])).unwrap());
    let raw = sign_eip1559(&eth, TEST_CHAIN_ID, 0, 1, 3_000_000, None, 0, &init);
    let tx = SignedTransaction::from_ethereum(raw).unwrap();
    assert_eq!(tx.sender(SuiteId::Standard), me);
    let out = c
        .block(vec![CheckedTx::new(tx, SuiteId::Standard)])
        .unwrap();
    let r = &out.receipts[0];
    assert!(r.is_success(), "{:?}", r.status);
    let token = create_address(&me, 0);
    assert_eq!(r.contract_address, Some(token));
    assert_eq!(
        token.to_string(),
        "0x5fbdb2315678afecb367f032d93f642f64180aa3"
    );
    assert_eq!(c.account(&me).nonce, 1);
    assert_eq!(
        call(&c, token, "balanceOf", json!([me.to_string()])),
        json!("77")
    );
    assert_eq!(call(&c, token, "totalSupply", json!([])), json!("77"));

    // A transaction whose envelope lies about its nonce fails verification.
    let raw = sign_eip1559(&eth, TEST_CHAIN_ID, 1, 1, 100_000, Some(token), 0, &[]);
    let mut forged = SignedTransaction::from_ethereum(raw).unwrap();
    forged.tx.nonce = 5;
    let s = tongtian_crypto::suite(SuiteId::Standard);
    assert!(forged.verify(s).is_err());
}

#[test]
fn erc721_mints_and_only_owners_transfer() {
    let (mut c, _) = chain();
    let abi = parse_abi(DEED_ABI).unwrap();
    let r = c.run(
        0,
        Action::Deploy {
            vm: VmKind::Evm,
            code: hex::decode(DEED_BIN.trim()).unwrap(),
            args: vec![],
            value: 0,
        },
        5_000_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let deed = r.contract_address.unwrap();
    let owner = c.address(1);
    let mint = encode_call(
        &abi,
        "mint",
        &json!([owner.to_string(), "7", "ipfs://deed-7"]),
    )
    .unwrap();
    let call_action = |input: Vec<u8>| Action::Call {
        to: deed,
        input,
        value: 0,
    };
    assert!(c.run(0, call_action(mint.clone()), 500_000).is_success());
    // Minting the same deed again reverts with the reason.
    let r = c.run(0, call_action(mint), 500_000);
    assert!(
        matches!(&r.status, TxStatus::Failed { message, .. } if message.contains("deed exists"))
    );
    // The registrar cannot move someone else's deed; the owner can.
    let to = c.address(2);
    let xfer = encode_call(
        &abi,
        "transferFrom",
        &json!([owner.to_string(), to.to_string(), "7"]),
    )
    .unwrap();
    let r = c.run(0, call_action(xfer.clone()), 500_000);
    assert!(
        matches!(&r.status, TxStatus::Failed { message, .. } if message.contains("not authorized"))
    );
    assert!(c.run(1, call_action(xfer), 500_000).is_success());
    let q = encode_call(&abi, "ownerOf", &json!(["7"])).unwrap();
    let out = c.query(owner, deed, q);
    let f = function(&abi, "ownerOf", 1).unwrap();
    assert_eq!(
        decode_output(f, out.result.status.as_ref().unwrap()).unwrap(),
        json!(to.to_string())
    );
}

/// `BLOCKHASH` answers the committed header hashes of the previous 256
/// blocks and zero otherwise, as Ethereum does.
#[test]
fn blockhash_returns_committed_header_hashes() {
    let (mut c, _) = chain();
    // Init code copies the 12-byte runtime and returns it; the runtime
    // returns BLOCKHASH(calldata word 0).
    let code =
        hex::decode("600c600c600039600c6000f3".to_owned() + "6000354060005260206000f3").unwrap();
    let r = c.run(
        0,
        Action::Deploy {
            vm: VmKind::Evm,
            code,
            args: vec![],
            value: 0,
        },
        1_000_000,
    );
    assert!(r.is_success(), "{:?}", r.status);
    let at = r.contract_address.unwrap();
    for _ in 0..3 {
        c.run(
            0,
            Action::Transfer {
                to: at,
                amount: 1,
                memo: vec![],
            },
            100_000,
        );
    }
    let ask = |c: &mut TestChain, n: u64| {
        let mut word = [0u8; 32];
        word[24..].copy_from_slice(&n.to_be_bytes());
        let r = c.run(
            0,
            Action::Call {
                to: at,
                input: word.to_vec(),
                value: 0,
            },
            100_000,
        );
        assert!(r.is_success(), "{:?}", r.status);
        r.output
    };
    let next = c.env().height;
    let hash_of = |c: &TestChain, h: u64| {
        c.store
            .header(h)
            .unwrap()
            .unwrap()
            .hash(SuiteId::Standard)
            .0
            .to_vec()
    };
    assert_eq!(ask(&mut c, next - 1), hash_of(&c, next - 1));
    let next = c.env().height;
    assert_eq!(ask(&mut c, next - 3), hash_of(&c, next - 3));
    assert_ne!(hash_of(&c, next - 3), vec![0u8; 32]);
    // The current block and later ones have no hash yet.
    let next = c.env().height;
    assert_eq!(ask(&mut c, next), vec![0u8; 32]);
    let next = c.env().height;
    assert_eq!(ask(&mut c, next + 5), vec![0u8; 32]);
}
