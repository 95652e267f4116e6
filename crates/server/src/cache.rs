//! A least-recently-used cache bounded by bytes rather than entries, since
//! its values (fields, PNG tiles) differ in size by orders of magnitude.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

/// Values with their sizes, evicted least recently used first once their
/// total passes the capacity.
pub struct ByteLru<K, V> {
    map: HashMap<K, (V, usize, u64)>,
    order: BTreeMap<u64, K>,
    tick: u64,
    bytes: usize,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> ByteLru<K, V> {
    /// An empty cache holding at most `capacity` bytes.
    pub fn new(capacity: usize) -> ByteLru<K, V> {
        ByteLru {
            map: HashMap::new(),
            order: BTreeMap::new(),
            tick: 0,
            bytes: 0,
            capacity,
        }
    }

    /// The value for `key`, which becomes the most recently used.
    pub fn get(&mut self, key: &K) -> Option<V> {
        let (value, _, tick) = self.map.get_mut(key)?;
        self.order.remove(tick);
        self.tick += 1;
        *tick = self.tick;
        self.order.insert(self.tick, key.clone());
        Some(value.clone())
    }

    /// Insert, evicting the least recently used entries to make room. A
    /// value larger than the whole cache is not kept.
    pub fn insert(&mut self, key: K, value: V, size: usize) {
        self.remove(&key);
        if size > self.capacity {
            return;
        }
        while self.bytes + size > self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            if let Some((_, s, _)) = self.map.remove(&oldest) {
                self.bytes -= s;
            }
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (value, size, self.tick));
        self.bytes += size;
    }

    /// Whether `key` has an entry (its recency unchanged).
    pub fn contains(&self, key: &K) -> bool {
        self.map.contains_key(key)
    }

    /// Keep only the entries whose key passes `keep`.
    pub fn retain(&mut self, keep: impl Fn(&K) -> bool) {
        let gone: Vec<K> = self.map.keys().filter(|k| !keep(k)).cloned().collect();
        for key in gone {
            self.remove(&key);
        }
    }

    /// Drop `key`'s entry, if any.
    fn remove(&mut self, key: &K) {
        if let Some((_, size, tick)) = self.map.remove(key) {
            self.order.remove(&tick);
            self.bytes -= size;
        }
    }

    /// Total size of the entries.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Number of entries.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_by_bytes() {
        let mut c = ByteLru::new(10);
        c.insert("a", 1, 4);
        c.insert("b", 2, 4);
        assert_eq!(c.get(&"a"), Some(1)); // a is now newer than b
        c.insert("c", 3, 4);
        assert_eq!(c.get(&"b"), None);
        assert_eq!(c.get(&"a"), Some(1));
        assert_eq!(c.get(&"c"), Some(3));
        assert_eq!(c.bytes(), 8);
        c.insert("huge", 9, 11);
        assert_eq!(c.get(&"huge"), None);
        assert_eq!(c.len(), 2);
    }
}
