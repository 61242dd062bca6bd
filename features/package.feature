@package
Feature: vman as an installable package
  An operator installs vman from the tarball `npm pack` makes, on a machine
  without the checkout: the `vman` command runs the compiled JavaScript, with
  no TypeScript loader and none of the sources, and `vman serve` works from
  there as it does in the checkout.

  Scenario: The packed tarball installed into an empty prefix runs `vman --version` and `vman serve`
    Given vman packed with npm pack
    When the tarball is installed with npm install -g into an empty prefix
    Then the installed vman --version prints the version of package.json
    When the installed vman serves on a free port
    Then the installed vman answers GET "/health" with 200 and a "application/json" body
    And the installed vman answers GET "/api/v1/openapi.json" with 200 and a "application/json" body
    And the installed vman answers GET "/api/v1/docs/static/swagger-ui-bundle.js" with 200 and a "application/javascript" body
    When the installed vman serve is sent SIGTERM
    Then the installed vman serve exits with code 0
    And no process runs from the installed prefix
    And the installed package holds no tsx, no src folder and no TypeScript file
