//! HMAC-SHA256 signatures, as webhook senders and receivers (Quench's webhooks, Slack,
//! PagerDuty) compute them, and their comparison in constant time.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Lower-case hex HMAC-SHA256 of the concatenated `parts`.
pub fn hmac_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `presented` is `expected`, in time that does not depend on where they differ.
pub fn same(expected: &str, presented: &str) -> bool {
    bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
}
