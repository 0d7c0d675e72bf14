package courier

// SearchTextTokens is the json.Decoder reading of SearchText, which the
// fast path must agree with on valid JSON (FuzzSearchTextFast).
var SearchTextTokens = searchTextTokens
