//! Which streams show which Images, from the last sync of each stream's views: an Image
//! created or deleted brings exactly those streams' views back (`imageMissing`, the Images a
//! view embeds), and nothing else.

use std::collections::{BTreeSet, HashMap};

/// Which streams show which Images, from their last sync: an Image created or deleted brings
/// exactly those streams back (`imageMissing`, embedded images).
#[derive(Default)]
pub struct ImageIndex {
    by_image: HashMap<String, BTreeSet<(String, String)>>,
    by_stream: HashMap<(String, String), Vec<String>>,
}

impl ImageIndex {
    /// Records the Images (by object name) `stream` shows.
    pub fn set(&mut self, stream: (String, String), images: Vec<String>) {
        self.remove(&stream);
        for image in &images {
            self.by_image
                .entry(image.clone())
                .or_default()
                .insert(stream.clone());
        }
        self.by_stream.insert(stream, images);
    }

    pub fn remove(&mut self, stream: &(String, String)) {
        for image in self.by_stream.remove(stream).unwrap_or_default() {
            if let Some(users) = self.by_image.get_mut(&image) {
                users.remove(stream);
                if users.is_empty() {
                    self.by_image.remove(&image);
                }
            }
        }
    }

    /// The streams (`namespace`, `name`) showing the Image object `image`.
    pub fn streams(&self, image: &str) -> Vec<(String, String)> {
        self.by_image
            .get(image)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(namespace: &str, name: &str) -> (String, String) {
        (namespace.to_string(), name.to_string())
    }

    #[test]
    fn an_image_brings_back_the_streams_that_show_it() {
        let mut index = ImageIndex::default();
        index.set(key("a", "ruby"), vec!["sha256.1".into(), "sha256.2".into()]);
        index.set(key("b", "ruby"), vec!["sha256.2".into()]);
        assert_eq!(index.streams("sha256.1"), [key("a", "ruby")]);
        assert_eq!(
            index.streams("sha256.2"),
            [key("a", "ruby"), key("b", "ruby")]
        );
        assert!(index.streams("sha256.3").is_empty());

        // a sync that no longer shows an Image: that Image brings it back no more
        index.set(key("a", "ruby"), vec!["sha256.3".into()]);
        assert!(index.streams("sha256.1").is_empty());
        assert_eq!(index.streams("sha256.2"), [key("b", "ruby")]);
        assert_eq!(index.streams("sha256.3"), [key("a", "ruby")]);
    }

    #[test]
    fn a_removed_stream_leaves_nothing_behind() {
        let mut index = ImageIndex::default();
        index.set(key("a", "ruby"), vec!["sha256.1".into(), "sha256.1".into()]);
        index.set(key("a", "php"), vec!["sha256.1".into()]);
        index.remove(&key("a", "ruby"));
        assert_eq!(index.streams("sha256.1"), [key("a", "php")]);
        index.remove(&key("a", "php"));
        index.remove(&key("a", "never-set"));
        assert!(index.by_image.is_empty() && index.by_stream.is_empty());
    }
}
