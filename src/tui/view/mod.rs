//! Drawing the state. One file per screen region; views read the state and mutate nothing.
