//! Which device a connection speaks for.
//!
//! Every session pins its connection (or its UDP datagram) to the first
//! device id a message names, and refuses a later message that names
//! another (`BadIdentity`), so that one connection never mixes two devices'
//! data. [`Pinned`] is that rule, shared by the protocols' sessions.

use crate::SessionError;

/// The device a connection speaks for: pinned by the first message that
/// names one; every later message must name the same.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pinned(Option<String>);

impl Pinned {
    /// The device id, once a message named one.
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// Whether no message has named a device yet.
    pub fn is_none(&self) -> bool {
        self.0.is_none()
    }

    /// Pins the connection to `id`, or checks that `id` is the device it is
    /// pinned to already (`BadIdentity` when it is another).
    pub fn pin(&mut self, id: &str) -> Result<(), SessionError> {
        match &self.0 {
            Some(current) if current != id => Err(SessionError::BadIdentity(format!(
                "connection already identified as {current}, message from {id}"
            ))),
            Some(_) => Ok(()),
            None => {
                self.0 = Some(id.to_owned());
                Ok(())
            }
        }
    }

    /// For a message that may or may not carry an id: pins or checks it as
    /// [`Pinned::pin`] does when it does; without one, the connection must
    /// be identified already (`NotIdentified`).
    pub fn pin_or_known(&mut self, id: Option<&str>) -> Result<(), SessionError> {
        match id {
            Some(id) => self.pin(id),
            None if self.is_none() => Err(SessionError::NotIdentified),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_unpinned() {
        let p = Pinned::default();
        assert!(p.is_none());
        assert_eq!(p.get(), None);
    }

    #[test]
    fn the_first_id_pins_and_the_same_id_again_is_fine() {
        let mut p = Pinned::default();
        assert_eq!(p.pin("356307042441013"), Ok(()));
        assert!(!p.is_none());
        assert_eq!(p.get(), Some("356307042441013"));
        assert_eq!(p.pin("356307042441013"), Ok(()));
        assert_eq!(p.get(), Some("356307042441013"));
    }

    #[test]
    fn another_id_is_refused_and_the_pin_stays() {
        let mut p = Pinned::default();
        p.pin("1").unwrap();
        assert_eq!(
            p.pin("2"),
            Err(SessionError::BadIdentity(
                "connection already identified as 1, message from 2".into()
            ))
        );
        assert_eq!(p.get(), Some("1"));
        // The comparison is exact: no trimming, no case folding, no prefix.
        assert!(p.pin("1 ").is_err());
        assert!(p.pin("").is_err());
        assert!(p.pin("11").is_err());
        let mut p = Pinned::default();
        p.pin("abc").unwrap();
        assert!(p.pin("ABC").is_err());
        assert_eq!(p.pin("abc"), Ok(()));
    }

    #[test]
    fn an_empty_id_pins_like_any_other() {
        // Sessions refuse unusable ids before they pin; `Pinned` takes what
        // it is given.
        let mut p = Pinned::default();
        p.pin("").unwrap();
        assert_eq!(p.get(), Some(""));
        assert!(!p.is_none());
        assert!(matches!(p.pin("1"), Err(SessionError::BadIdentity(_))));
    }

    #[test]
    fn a_message_without_an_id_needs_an_identified_connection() {
        let mut p = Pinned::default();
        assert_eq!(p.pin_or_known(None), Err(SessionError::NotIdentified));
        assert!(p.is_none());
        assert_eq!(p.pin_or_known(Some("7")), Ok(()));
        assert_eq!(p.get(), Some("7"));
        assert_eq!(p.pin_or_known(None), Ok(()));
        assert_eq!(p.pin_or_known(Some("7")), Ok(()));
        assert_eq!(
            p.pin_or_known(Some("8")),
            Err(SessionError::BadIdentity(
                "connection already identified as 7, message from 8".into()
            ))
        );
        assert_eq!(p.get(), Some("7"));
    }
}
