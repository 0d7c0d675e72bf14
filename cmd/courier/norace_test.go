package main

// raceEnabled reports whether the tests run with the race detector; the
// binary they run is then built with it too.
var raceEnabled bool
