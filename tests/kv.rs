//! mobula::kv, the key-value store for libraries (Ray's internal KV), on one node: values
//! set, kept or replaced, listed by prefix, deleted; its bounds refused with a reason.

mod common;

use common::turn;
use mobula::KvError;
use mobula::prelude::*;

#[test]
fn keys_are_set_kept_listed_and_deleted_and_bounds_are_refused() {
    let _turn = turn();
    assert!(matches!(
        mobula::kv::get("a", "k"),
        Err(KvError::NotInitialized)
    ));
    let _m = mobula::init(Config::default().num_cpus(1)).unwrap();
    assert_eq!(mobula::kv::get("tune", "exp/1").unwrap(), None);
    assert!(!mobula::kv::put("tune", "exp/1", b"one", true).unwrap());
    assert!(!mobula::kv::put("tune", "exp/2", b"two", true).unwrap());
    assert!(!mobula::kv::put("serve", "exp/1", b"other", true).unwrap());
    // Kept unless overwrite; put says the key had a value.
    assert!(mobula::kv::put("tune", "exp/1", b"uno", false).unwrap());
    assert_eq!(mobula::kv::get("tune", "exp/1").unwrap().unwrap(), b"one");
    assert!(mobula::kv::put("tune", "exp/1", b"uno", true).unwrap());
    assert_eq!(mobula::kv::get("tune", "exp/1").unwrap().unwrap(), b"uno");
    assert_eq!(
        mobula::kv::keys("tune", "exp/").unwrap(),
        vec!["exp/1", "exp/2"]
    );
    assert_eq!(mobula::kv::keys("serve", "").unwrap(), vec!["exp/1"]);
    assert!(mobula::kv::delete("tune", "exp/2").unwrap());
    assert!(!mobula::kv::delete("tune", "exp/2").unwrap());
    assert!(mobula::kv::delete_prefix("tune", "exp").unwrap());
    assert!(mobula::kv::keys("tune", "").unwrap().is_empty());
    assert_eq!(
        mobula::kv::get("serve", "exp/1").unwrap().unwrap(),
        b"other"
    );
    // Bounds.
    let big = vec![0u8; (1 << 20) + 1];
    match mobula::kv::put("tune", "big", &big, true) {
        Err(KvError::Refused(reason)) => assert!(reason.contains("limit"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        mobula::kv::put("tune", &"k".repeat(1025), b"", true),
        Err(KvError::Refused(_))
    ));
    assert_eq!(mobula::kv::get("tune", "big").unwrap(), None);
}
