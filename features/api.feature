@api
Feature: vman's API for clients
  Programs drive vman as much as people do. They need a description of the
  API they can read (an OpenAPI document, and a page made from it), a way to
  ask whether vman can start VMs at all, lists they can filter, and VMs and
  disks they can name by the names they gave them rather than by ids.

  Rule: The documentation page shows every route of the OpenAPI document, to anyone

    Scenario: The documentation page lists every route, without the API token
      Given vman is running on this host
      And vman requires the API token "s3cret"
      When the documentation page is opened in a browser without the token
      Then the page lists every route of the OpenAPI document

  Rule: /ready says whether VMs can start, and why not

    Scenario: vman on this host is ready
      Given vman is running on this host
      When the operator asks vman whether it is ready
      Then vman answers that it is ready

    Scenario: vman that finds a QEMU too old to use is not ready, and says why
      Given vman runs as a separate process that finds QEMU 2.0.0 first on its PATH
      When the operator asks vman whether it is ready
      Then vman answers 503 not ready, saying "version 2.0.0"
      And its health check still answers 200

  Rule: Lists can be filtered by state and by name

    @integration
    Scenario: VMs listed by state and name
      Given vman is running on this host
      And a running VM "web-1" from the small template
      And a VM "web-2" created from the small template
      And a VM "db-1" created from the small template
      When the operator lists the VMs with state "running" and name "web"
      Then the list holds exactly "web-1"
      And of the VMs "web-1", "web-2" and "db-1", only "web-1" has a QEMU process
      When the operator lists the VMs with name "web"
      Then the list holds exactly "web-1" and "web-2"
      When the operator lists the VMs with state "created"
      Then the list holds exactly "web-2" and "db-1"

  Rule: VMs and disks are found by their names as well as by their ids

    @integration
    Scenario: A VM started, given a disk, stopped and deleted by its name
      Given vman is running on this host
      And a VM "web" created from the small template
      And a 1 GB disk "data"
      When the VM "web" is started by its name
      Then QEMU runs the VM "web" and QMP says it is running
      When the disk "data" is attached to the VM "web", both given by name
      Then QMP lists the disk "data" on "web"
      When the VM "web" is stopped by its name
      Then no QEMU process of "web" is left
      And the VM "web" is recorded as stopped
      When the VM "web" is deleted by its name
      Then the database has no record of "web"
