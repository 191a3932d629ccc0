// Package hostile holds end-to-end tests of what hostile or slow callers
// cannot do to figway: oversized headers fail alone, header floods do not
// grow its memory, slow clients are cut, and a connection cap keeps
// 20,000 of them below the descriptor limit while others are served.
package hostile
