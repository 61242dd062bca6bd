@report
Feature: The report of a run opens anywhere
  A QA engineer downloads the site of a CI run and opens it from disk, with
  no server: the Allure report must show its results there, not a spinner
  (a browser refuses to fetch data files over file://, so the report carries
  its data inside its one page). The suite builds a report with the project's
  own script from results it writes, opens it from disk in headless Chromium,
  and reads what the page shows.

  Scenario: The Allure report opened from disk lists every scenario with its status
    Given Allure results of a run with these scenarios:
      | feature   | scenario                            | status |
      | Disks     | A disk is attached to a running VM  | passed |
      | Snapshots | A clone starts from the snapshot    | failed |
    When the Allure report of those results is built
    Then the report is one page with its data inside, beside no data folder
    And opened from disk in a headless browser, the report shows 2 scenarios, 1 failed, grouped under "Disks" and "Snapshots", and names the failed one, "A clone starts from the snapshot"
