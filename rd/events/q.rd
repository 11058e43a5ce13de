<resource schema="epnml_events" resdir="events">
	<meta name="title">epnml events: ICMEs detected by machine learning in in-situ solar-wind data</meta>
	<meta name="description">
		Interplanetary coronal mass ejections (ICMEs) detected in in-situ
		solar-wind plasma and magnetic-field data (Wind, STEREO, OMNI) by a
		1-D ResUNet++-style segmentation network, after the Europlanet IWF
		machine-learning science case (Rüdisser et al. 2022).  One row per
		detected event, with its start and end, the model score and the
		model version that produced it; rows of older model versions are
		kept in the store and replaced here by the newest version.  Rows
		whose processing_level_desc says "simulated" come from the simulated
		demo inputs, not from spacecraft data.
	</meta>
	<meta name="creationDate">2026-11-22T00:00:00</meta>
	<meta name="subject">solar-physics</meta>
	<meta name="subject">solar-wind</meta>
	<meta name="subject">coronal-mass-ejections</meta>
	<meta name="subject">interplanetary-medium</meta>
	<meta name="contentLevel">Research</meta>
	<meta name="type">Catalog</meta>
	<meta name="source">10.1029/2022SW003149</meta>
	<meta name="referenceURL">https://doi.org/10.1029/2022SW003149</meta>
	<meta name="instrument">Wind MFI, Wind SWE</meta>
	<meta name="facility">Wind</meta>

	<table id="epn_core" onDisk="True" adql="True">
		<!-- the registry record's shortName (at most 16 characters) -->
		<meta name="shortName">epnml events</meta>
		<meta name="description">
			Detected ICMEs, one per row (EPN-TAP 2.0, dataproduct_type ci).
			The table is a view over the current rows of the store.
		</meta>
		<!-- every TAP response carries a DataLink service descriptor (adhoc:service)
			on granule_uid: the service dl below (service/dachs/userconfig.rd) -->
		<meta name="_associatedDatalinkService">
			<meta name="serviceId">dl</meta>
			<meta name="idColumn">granule_uid</meta>
		</meta>
		<mixin spatial_frame_type="none"
			optional_columns="thumbnail_url processing_level_desc publisher bib_reference time_scale time_refposition target_region sun_distance_min sun_distance_max event_type event_status datalink_url access_url access_format access_estsize"
			>//epntap2#table-2_0</mixin>
		<!-- BEGIN generated columns: python -m epnml.schemas.render -->
		<column name="ml_model_name" type="text" ucd="meta.id;meta.software" required="True"
			description="Name of the model that produced the row"/>
		<column name="ml_model_version" type="text" ucd="meta.version;meta.software" required="True"
			description="Version of the model that produced the row"/>
		<column name="ml_weights_sha256" type="text" ucd="meta.checksum" required="True"
			description="SHA-256 of the model weights file"/>
		<column name="ml_run_id" type="text" ucd="meta.id;meta.dataset" required="True"
			description="Identifier of the ingest run that wrote the row"/>
		<column name="ml_score" type="double precision" ucd="stat.probability"
			description="Model score (probability) of the detection, 0..1"/>
		<column name="event_duration" type="double precision" unit="h" ucd="time.duration"
			description="Duration of the detected event"/>
		<column name="event_b_max" type="double precision" unit="nT" ucd="phys.magField;stat.max"
			description="Maximum magnetic field magnitude in the event"/>
		<column name="event_b_mean" type="double precision" unit="nT" ucd="phys.magField;stat.mean"
			description="Mean magnetic field magnitude in the event"/>
		<column name="event_v_mean" type="double precision" unit="km/s" ucd="phys.veloc;stat.mean"
			description="Mean solar-wind speed in the event"/>
		<column name="icmecat_id" type="text" ucd="meta.id.cross"
			description="ICMECAT event of the same spacecraft most covered by this detection (NULL: none overlaps, or not cross-matched)"/>
		<column name="icmecat_overlap" type="double precision" ucd="time.interval;arith.ratio"
			description="Fraction of the ICMECAT event (icme_start..mo_end) covered by this detection (0..1]"/>
		<column name="nguyen_id" type="text" ucd="meta.id.cross"
			description="Nguyen et al. 2019 Wind ICME most covered by this detection (N19_&lt;begin&gt;; NULL: none overlaps, or not cross-matched)"/>
		<column name="nguyen_overlap" type="double precision" ucd="time.interval;arith.ratio"
			description="Fraction of the Nguyen 2019 event (begin..end) covered by this detection (0..1]"/>
		<!-- END generated columns -->
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT \colNames FROM epnml.events WHERE superseded_at IS NULL)
		</viewStatement>
		<publish/>
	</table>

	<table id="coverage_src" onDisk="True" adql="False">
		<meta name="description">
			The time and spectral extent of epn_core's rows under the names and units
			DaCHS' coverage updater knows (t_min/t_max in JD, em_min/em_max as vacuum
			wavelengths in m).  Not queryable through TAP: only `dachs limits` reads it.
			sky_ra/sky_dec are always NULL: the footprints are in body-fixed frames,
			not on the sky, and DaCHS 2.7 writes spatial coverage as ICRS MOCs only,
			so its updater finds no sky position and writes no spatial coverage.
		</meta>
		<column name="t_min" type="double precision" unit="d" ucd="time.start;obs"/>
		<column name="t_max" type="double precision" unit="d" ucd="time.end;obs"/>
		<column name="em_min" type="double precision" unit="m" ucd="em.wl;stat.min"/>
		<column name="em_max" type="double precision" unit="m" ucd="em.wl;stat.max"/>
		<column name="sky_ra" type="double precision" unit="deg" ucd="pos.eq.ra;meta.main"/>
		<column name="sky_dec" type="double precision" unit="deg" ucd="pos.eq.dec;meta.main"/>
		<viewStatement>
			CREATE VIEW \curtable AS (
				SELECT time_min AS t_min, time_max AS t_max,
					299792458.0 / NULLIF(spectral_range_max, 0) AS em_min,
					299792458.0 / NULLIF(spectral_range_min, 0) AS em_max,
					NULL::double precision AS sky_ra, NULL::double precision AS sky_dec
				FROM \schema.epn_core)
		</viewStatement>
	</table>

	<!-- Coverage for the registry records, from the rows: `dachs limits <family>/q`
		(service/provision.sh coverage, run after every ingest) fills it in from
		coverage_src (temporal in MJD, spectral in J, as VODataService wants).  No
		spatial coverage: DaCHS 2.7 writes ICRS MOCs only, these footprints are in
		body-fixed frames (see coverage_src). -->
	<coverage>
		<updater sourceTable="coverage_src"/>
	</coverage>

	<FEED source="%#epnml-datalink"/>

	<data id="import">
		<make table="epn_core"/>
	</data>

	<data id="coverage">
		<make table="coverage_src"/>
	</data>

	<regSuite title="epnml events regression">
		<regTest title="epn_core serves a current row">
			<url parSet="TAP" QUERY="SELECT TOP 1 service_title, target_class FROM epnml_events.epn_core"
				>/tap/sync</url>
			<code>
				# a row, not the table name: the name is also in the query echoed back
				row = self.getUnique(self.getVOTableRows())
				self.assertEqual(row["service_title"], "epnml_events")
				self.assertEqual(row["target_class"], "interplanetary_medium")
			</code>
		</regTest>
	</regSuite>
</resource>
