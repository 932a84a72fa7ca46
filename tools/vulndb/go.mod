// The Go vulnerability database the tests run govulncheck against offline: the
// golang.org/x/vulndb module's data/osv (one OSV file per report), which
// govulncheck -db file://DIR reads as it is. To move to a newer database, change
// the version and run `go mod download golang.org/x/vulndb` here.
module roadbike.example/tools/vulndb

go 1.26

require golang.org/x/vulndb v0.0.0-20261105234957-e22db6528018
