package server

// SetTestHookUpgraded sets the hook that runs between a connection's upgrade
// and its link, for the tests of frames and closes that come then; nil
// removes it. Tests that set it must not run in parallel.
func SetTestHookUpgraded(f func()) {
	if f == nil {
		testHookUpgraded.Store(nil)
		return
	}
	testHookUpgraded.Store(&f)
}
