package policy

// MaxRetention is maxRetention, for the tests outside the package.
const MaxRetention = maxRetention
