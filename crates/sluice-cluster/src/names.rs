//! `generateName` suffixes. (The name rules themselves are `sluice_api::k8s::names`.)

use sluice_api::k8s::hash::SAFE_ALPHABET;

/// Five characters from the apiserver's generateName alphabet (no vowels, no look-alikes),
/// derived from `seed`.
pub fn random_suffix(mut seed: u64) -> String {
    let mut s = String::with_capacity(5);
    for _ in 0..5 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        s.push(SAFE_ALPHABET[((seed >> 33) % SAFE_ALPHABET.len() as u64) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_is_five_chars_of_the_alphabet() {
        let s = random_suffix(42);
        assert_eq!(s.len(), 5);
        assert!(s.bytes().all(|c| SAFE_ALPHABET.contains(&c)));
        assert_ne!(random_suffix(1), random_suffix(2));
    }
}
