// Package fleet runs the organizations: it owns each organization's
// lifecycle (start, restart, stop, logout, clear), applies the Bad MAC and
// cooldown policies to the events its workers stream, and answers the status
// API. Decisions take the current time as a parameter so tests can drive
// them with a fake clock; processes are started through a LaunchFunc.
package fleet
