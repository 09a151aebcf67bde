package origin

// TestManifests is testManifests for the external tests.
var TestManifests = testManifests
