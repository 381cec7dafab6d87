package webhook

// Pick is pick, for the tests of package webhook_test.
var Pick = pick
