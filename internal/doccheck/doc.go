// Package doccheck holds tests that keep the documentation true to the code:
// the README's configuration table is generated from config.Keys().
package doccheck
