//go:build !sandboxprobe

package sandbox

// requiredABI is the Landlock ABI that "require" insists on.
func requiredABI() int { return netABI }
