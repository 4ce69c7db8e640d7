//! [`Group`]: connections that hear each other, for fan-out (a chat room,
//! a pub/sub topic, every client of a ticker).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use super::outgoing::{Sender, TrySendError};
use super::{Connection, ConnectionId};

/// A set of connections that may be sent to together: shared by every
/// connection's handler (it is cheap to clone), each connection in it as
/// long as it holds its [`Membership`].
///
/// A broadcast never waits. Each member has its own bounded outgoing queue
/// ([`Server::send_queue`](crate::Server::send_queue)); a member whose
/// queue is full when a broadcast reaches it reads more slowly than the
/// group talks, and is let go: its connection is closed, the server logs
/// `closing the connection: it fell behind…` and counts a `fell_behind`
/// error, and everyone else is served as before. So one slow reader can
/// neither grow the server's memory nor hold the others back. A handler
/// that would rather wait for one peer uses [`Sender::send`] instead.
///
/// # Examples
///
/// A room where each line goes to everyone else:
///
/// ```
/// use sockit::handler::{Connection, Group};
///
/// async fn talk(room: Group, mut connection: Connection) -> std::io::Result<()> {
///     let me = room.join(&connection);
///     while let Some(line) = connection.receive().await {
///         room.broadcast_except(me.id(), &line);
///     }
///     Ok(()) // `me` is dropped: the connection leaves the room
/// }
/// ```
#[derive(Clone, Default)]
pub struct Group {
    members: Arc<Mutex<BTreeMap<ConnectionId, Sender>>>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group").field("members", &self.len()).finish()
    }
}

/// A connection's place in a [`Group`]; it leaves the group when this is
/// dropped.
#[derive(Debug)]
#[must_use = "the connection leaves the group when its membership is dropped"]
pub struct Membership {
    group: Group,
    id: ConnectionId,
}

impl Membership {
    /// The member's connection.
    pub fn id(&self) -> ConnectionId {
        self.id
    }
}

impl Drop for Membership {
    fn drop(&mut self) {
        self.group.lock().remove(&self.id);
    }
}

impl Group {
    /// An empty group.
    pub fn new() -> Self {
        Group::default()
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<ConnectionId, Sender>> {
        self.members
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Adds `connection` to the group until the membership is dropped.
    pub fn join(&self, connection: &Connection) -> Membership {
        self.lock().insert(connection.id(), connection.sender());
        Membership {
            group: self.clone(),
            id: connection.id(),
        }
    }

    /// Sends `message` to every member; see [`broadcast_except`](Self::broadcast_except).
    pub fn broadcast(&self, message: impl AsRef<[u8]>) -> usize {
        self.fan_out(None, message.as_ref())
    }

    /// Sends `message` to every member but `except` (usually the sender),
    /// each framed as its connection frames messages, without waiting.
    /// A member that has fallen behind is let go (see [`Group`]). Returns
    /// how many members it was queued for.
    pub fn broadcast_except(&self, except: ConnectionId, message: impl AsRef<[u8]>) -> usize {
        self.fan_out(Some(except), message.as_ref())
    }

    fn fan_out(&self, except: Option<ConnectionId>, message: &[u8]) -> usize {
        let members = self.lock();
        let mut queued = 0;
        for (id, member) in members.iter() {
            if Some(*id) == except {
                continue;
            }
            match member.try_send(message) {
                Ok(()) => queued += 1,
                Err(TrySendError::Full) => member.disconnect_slow(),
                Err(TrySendError::Closed) => {}
            }
        }
        queued
    }

    /// Sends `message` to the member `to` only, without waiting; a member
    /// that has fallen behind is let go.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Closed`] when `to` is not in the group or is
    /// closed; [`TrySendError::Full`] when it fell behind (and is let go).
    pub fn send_to(&self, to: ConnectionId, message: impl AsRef<[u8]>) -> Result<(), TrySendError> {
        let members = self.lock();
        let member = members.get(&to).ok_or(TrySendError::Closed)?;
        let sent = member.try_send(message.as_ref());
        if sent == Err(TrySendError::Full) {
            member.disconnect_slow();
        }
        sent
    }

    /// A [`Sender`] to the member `to`, to send to it with backpressure.
    pub fn sender(&self, to: ConnectionId) -> Option<Sender> {
        self.lock().get(&to).cloned()
    }

    /// The members, in the order they connected.
    pub fn members(&self) -> Vec<ConnectionId> {
        self.lock().keys().copied().collect()
    }

    /// How many connections are in the group.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether no connection is in the group.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}
