// Every test is held to the coverage of the plugin's sources (lib/), whichever of them it loads.
// The compiled copies that the example-app and package tests run (dist/) are not sources.
export default () => ['lib/**/*.ts']
